"""The fixed cost of one step, per step kind: a fresh papermill kernel per step against a warm kernel reused.

On a finished step the run notebook skips the work itself, so what its execution costs is exactly the fixed
part of every step: kernel start, imports, loading the config, checking the data and upstream steps, and the
record's chart. For each kind (pretrain, sft, evaluate) this executes the run notebook of one finished step of
a results folder three times: in a fresh kernel (how every step started before `kernels.WarmKernel`), then
twice in one warm kernel (the first pays the start-up, the second is what every later step of a worker costs).
It also times, in this process, the loads a step does inside its work (tokenizer, model, evaluation items),
which a finished step skips. Executed copies go to a temporary folder; the results folder is only read.

    python bench/step_startup.py --results results/mini [--mixture V1-P0] [--scale mini-s]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from magiclib import grid, precision, steps
from magiclib.config import load_config
from magiclib.kernels import WarmKernel


def run(kernel: WarmKernel, kind: str, params: dict, out: Path) -> dict:
    started = time.perf_counter()
    kernel.execute(grid.NOTEBOOKS / f"{kind}.ipynb", out, params, grid.NOTEBOOKS)
    total = time.perf_counter() - started
    cells = [c["metadata"]["papermill"]["duration"] or 0.0 for c in json.loads(out.read_text())["cells"]]
    return {"total_s": total, "in_cells_s": sum(cells), "outside_cells_s": total - sum(cells),
            "slowest_cell_s": max(cells)}


def inner_loads(cfg, results: Path, step: steps.Step) -> float:
    """Seconds of what the step's own work loads before it computes (skipped on a finished step)."""
    from transformers import AutoTokenizer

    from magiclib import train

    started = time.perf_counter()
    if step.kind == "pretrain":
        AutoTokenizer.from_pretrained(steps.tokenizer_dir(cfg, results))
    else:
        folder = steps.step_dir(cfg, results, step.needs() if step.kind == "evaluate" else step) / "model"
        AutoTokenizer.from_pretrained(folder)
        train._load_model(folder)
        if step.kind == "evaluate":
            from magiclib.benchmarks import read_items

            read_items(steps.eval_items_dir(cfg, results) / steps.EVAL_ITEMS_FILE)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="a results folder with finished steps")
    parser.add_argument("--mixture", default="V1-P0")
    parser.add_argument("--scale", default=None, help="default: the config's first scale")
    args = parser.parse_args()
    results = Path(args.results).resolve()
    cfg = load_config(str(results / "config.yaml"))
    scale = args.scale or next(iter(cfg.scales))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = WarmKernel()
        for kind, stage in (("pretrain", None), ("sft", None), ("evaluate", "PT")):
            step = steps.Step(kind, args.mixture, scale, cfg.seeds[0], stage)
            if not steps.is_done(cfg, results, step):
                print(f"skipping {kind}: {step.label} is not finished in {results}")
                continue
            params = {"config_path": str(results / "config.yaml"), "results_dir": str(results),
                      "mixture": step.mixture, "scale": step.scale, "seed": step.seed} | ({"stage": stage} if stage else {})
            fresh = WarmKernel()
            rows.append({"kind": kind, "kernel": "fresh", **run(fresh, kind, params, Path(tmp) / f"{kind}-fresh.ipynb")})
            fresh.shutdown()
            for i in (1, 2):
                rows.append({"kind": kind, "kernel": f"warm, run {i}",
                             **run(warm, kind, params, Path(tmp) / f"{kind}-warm{i}.ipynb")})
            rows.append({"kind": kind, "kernel": "loads inside the step", "total_s": inner_loads(cfg, results, step)})
            print(pd.DataFrame(rows[-4:]).to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
        warm.shutdown()
    table = pd.DataFrame(rows)
    load = os.getloadavg()
    print(f"\n{precision.cpu_model()}, {os.cpu_count()} cores; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "step_startup.json").write_text(json.dumps({"cpu": precision.cpu_model(), "load_average": load,
                                                       "results": str(results), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
