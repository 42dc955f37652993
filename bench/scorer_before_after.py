"""The study's evaluate step, before and after a scorer change: the same checkpoints and items, side by side.

Loads the scorer of an earlier commit (`git show <commit>:src/magiclib/scorer.py` into a temporary module)
beside the current one, takes finished pretraining checkpoints of a results folder (one per scale, read only)
and the study's own evaluation items (data/eval-*/items.jsonl), and scores each checkpoint with both,
alternating old / new --repeats times (the fastest run counts; the machine may be shared; --clock cpu counts
this process's CPU seconds, robust to other jobs on a loaded machine). Prints seconds,
items/s, the speed-up and the largest |log-likelihood difference|. Writes bench/out/scorer_before_after.json.

The earlier scorer computes in fp32 only. `--precision fp32 bf16` times the current one at each precision in the
same run: fp32 is the scorer change alone; the precision `auto` resolves to on this machine
(magiclib.precision) is what the study's evaluate stage runs now.

    python bench/scorer_before_after.py --results results/mini --commit 9c1c4e1 [--threads 1] [--repeats 2]
    python bench/scorer_before_after.py --results results/mini --precision fp32 bf16
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from magiclib import io, paths, scorer  # noqa: E402
from magiclib.benchmarks import read_items  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def old_scorer(commit: str):
    """The scorer module of `commit`, its relative imports pointed at the installed magiclib."""
    source = subprocess.run(["git", "show", f"{commit}:src/magiclib/scorer.py"], cwd=paths.REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout
    source = source.replace("from .", "from magiclib.")
    path = Path(tempfile.mkdtemp()) / f"scorer_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"scorer_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def checkpoints(results: Path, per_scale: int) -> list[Path]:
    """Finished pretraining checkpoints of the results folder, the first `per_scale` of each scale."""
    chosen, seen = [], {}
    for folder in sorted((results / "runs" / "pretrain").iterdir()):
        if folder.name.endswith(".partial") or not (folder / io.RUN_RECORD).exists():
            continue
        scale = folder.name.split("_")[1]
        if seen.get(scale, 0) < per_scale:
            seen[scale] = seen.get(scale, 0) + 1
            chosen.append(folder / "model")
    return chosen


def predictions(table) -> np.ndarray:
    """The acc prediction (argmax log-likelihood) of every item, in table order."""
    return table.groupby(["benchmark", "item"], sort=False)["loglik"].agg(lambda s: int(np.argmax(s))).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=paths.REPO_ROOT / "results" / "mini")
    parser.add_argument("--commit", default="9c1c4e1", help="the commit whose scorer is 'before'")
    parser.add_argument("--per-scale", type=int, default=1, help="checkpoints per scale")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a study worker's: 1)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="the study's eval.batch_size")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--precision", nargs="+", choices=scorer.PRECISIONS, default=["fp32"],
                        help="the current scorer's precisions (the earlier one: fp32)")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    before = old_scorer(args.commit)
    items_file = next((args.results / "data").glob("eval-*/items.jsonl"))
    items = read_items(items_file)
    rows = []
    for folder in checkpoints(args.results, args.per_scale):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        runs = {"before": (before, "fp32"), **{f"after {p}": (scorer, p) for p in args.precision}}
        seconds = {name: [] for name in runs}
        tables = {}
        for _ in range(args.repeats):
            for name, (module, precision) in runs.items():
                kwargs = {"precision": precision} if module is scorer else {}
                start = clock()
                tables[name] = module.score_items(model, tokenizer, items, batch_size=args.batch_size, progress=False,
                                                  **kwargs)
                seconds[name].append(clock() - start)
        row = {"checkpoint": folder.parent.name, "items": len(items), "before_s": min(seconds["before"]),
               "load_average": os.getloadavg()[0]}
        line = f"{row['checkpoint']:32s} {row['items']:5d} items  before {row['before_s']:7.1f} s"
        for p in args.precision:
            after = tables[f"after {p}"]
            diff = float(np.max(np.abs(tables["before"]["loglik"].to_numpy() - after["loglik"].to_numpy())))
            same_pred = float(np.mean(predictions(tables["before"]) == predictions(after)))
            row[p] = {"after_s": min(seconds[f"after {p}"]), "max_abs_loglik_diff": diff, "same_pred_acc": same_pred}
            row[p]["speedup"] = row["before_s"] / row[p]["after_s"]
            line += (f" | after {p} {row[p]['after_s']:7.1f} s  x{row[p]['speedup']:.2f}  max|dLL| {diff:.1e}  "
                     f"same acc pred {same_pred:.3f}")
        rows.append(row)
        print(f"{line}  load {row['load_average']:.1f}", flush=True)
    total = {"before_s": sum(r["before_s"] for r in rows)}
    for p in args.precision:
        total[p] = {"after_s": sum(r[p]["after_s"] for r in rows)}
        total[p]["speedup"] = total["before_s"] / total[p]["after_s"]
        print(f"all: before {total['before_s']:.1f} s, after {p} {total[p]['after_s']:.1f} s, "
              f"x{total[p]['speedup']:.2f}")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "")
    io.write_json(OUT / "scorer_before_after.json", {"args": {k: str(v) for k, v in vars(args).items()},
                                                      "cpu": cpu, "versions": io.library_versions(),
                                                      "rows": rows, "total": total, "argv": sys.argv})


if __name__ == "__main__":
    main()
