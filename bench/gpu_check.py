"""The prepared GPU check (issue 15): one script, one device call, about 8 minutes of a fresh GPU machine.

Parts (each recorded in one JSON, then printed as a table):
  throughput  tokens/s, step time, MFU (against the chip's dense bf16 peak) and peak memory of the paper's
              240M and 1B shapes, our loop eager and compiled (`train.prepare_model`, `train.step_gradients`),
              beside a plain PyTorch reference loop on the same shapes, batches and optimizer, in the same run
  mini        a two-mixture, two-scale miniature of the study end to end (data, PT, SFT, scoring, tables)
              through `magic study`, on whatever device torch finds
  small       the `small` preset's two shapes for a few hundred steps each, and the `small` study's wall time
              on one GPU projected from them (pretraining + SFT steps; scoring is not projected)

On the device machine the working tree arrives without ../shared/data, so the miniature reads a subset of
the mirror packed beforehand on this machine (`--pack-data`, a few MB) and carried with the command:

    python bench/gpu_check.py --pack-data .gpu_data            # here, once (.gpu_data is gitignored)
    # then, through the device tool, one call (carry [".gpu_data"]), e.g. timeout_s 540:
    bash -c 'python3 -m pip install --no-deps --no-build-isolation -q -e . ; \\
             MAGIC_DATA=$PWD/.gpu_data python3 bench/gpu_check.py --out $OUT/gpu_check.json'

Every part runs on the CPU too (`--tiny`: toy shapes, a few steps), which is how tests/test_gpu_check.py
checks everything here but the figures. A part that fails is recorded with its error and the rest still run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from magiclib import io, paths, train
from magiclib.config import ModelConfig, TrainConfig, load_config
from magiclib.model import build_model, count_parameters, flops_per_token

PARTS = ("throughput", "mini", "small")
MINI_MIXTURES = ["V1-P0", "V3-P2"]
# The paper's shapes at the batches the H100 check used (fits one 80 GB GPU without activation checkpointing).
PAPER_RUNS = {"240M": dict(batch=16, micro=4), "1B": dict(batch=8, micro=2)}
TINY_MODEL = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, ffn_mult=2.0, vocab_size=512, context=64)
PACKED_LINES = {"benchmarks": 64, "sft": 300, "pretrain": 200}  # rows kept per file of the packed mirror


# --- one training shape, our loop or the plain one --------------------------------------------------------


def plain_step(model, optimizer, batches: list[dict], n_targets: int, grad_clip: float, bf16: bool) -> torch.Tensor:
    """The reference: forward, cross-entropy, backward per micro-batch, clip, AdamW; nothing of the library."""
    summed = torch.zeros((), device=batches[0]["input_ids"].device)
    for batch in batches:
        with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=batch["input_ids"]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), reduction="sum")
        (loss / n_targets).backward()
        summed += loss.detach()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return summed / n_targets


def measure_shape(name: str, mc: ModelConfig, tc: TrainConfig, loop: str, steps: int, tokens_file: Path,
                  device: torch.device, warmup: int = 3) -> dict:
    """Train `steps` timed steps of one shape with `loop` (ours | compiled | plain), after `warmup` untimed
    steps (kernel selection, compilation, allocator growth)."""
    bf16 = tc.precision == "bf16"
    rt = train.Runtime(rank=0, world=1, device=device, owns_group=False)
    data = train.TokenWindows(tokens_file, tc.seq_len, mc.vocab_size)
    with device:  # initialise on the device: seconds instead of a minute on the CPU for 1B
        model = build_model(mc, seed=0)
    if loop == "compiled":
        train.prepare_model(model, TrainConfig(**{**vars(tc), "compile": True}))
    optimizer = train.make_optimizer(model, tc, device)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start, loss = 0.0, None
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        indices = train.batch_indices(step, tc.batch_size, len(data), 0)
        for group in optimizer.param_groups:
            group["lr"] = train.lr_at(step, tc, warmup + steps)
        if loop == "plain":
            micro = [indices[i: i + tc.micro_batch_size] for i in range(0, len(indices), tc.micro_batch_size)]
            batches = [train.collate([data[i] for i in m], 0, device) for m in micro]
            loss = plain_step(model, optimizer, batches, data.n_targets(indices), tc.grad_clip, bf16)
        else:
            summed, n_targets, _ = train.step_gradients(model, data, indices, tc, rt, pad_id=0, bf16=bf16)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss = summed / n_targets
    _sync(device)
    seconds = time.perf_counter() - start
    tokens_per_s = steps * tc.batch_size * tc.seq_len / seconds
    peak = train.peak_flops(device.type, torch.cuda.get_device_name(device) if device.type == "cuda" else "", bf16)
    row = {"shape": name, "loop": loop, "params_M": count_parameters(mc)["total"] / 1e6, "steps": steps,
           "batch": f"{tc.batch_size}x{tc.seq_len} (micro {tc.micro_batch_size})", "step_s": seconds / steps,
           "tokens_per_s": tokens_per_s, "mfu": flops_per_token(mc, tc.seq_len) * tokens_per_s / peak,
           "peak_mem_GiB": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
           "final_loss": float(loss)}
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def throughput(args, device: torch.device, tokens_file: Path) -> list[dict]:
    rows = []
    for name, run in PAPER_RUNS.items():
        mc = TINY_MODEL if args.tiny else load_config("paper").scale(name).model
        seq_len = 32 if args.tiny else args.seq_len
        batch, micro = (4, 2) if args.tiny else (run["batch"], run["micro"])
        tc = TrainConfig(lr=3e-4, batch_size=batch, micro_batch_size=micro, seq_len=seq_len, warmup_steps=10,
                         max_steps=None, precision="bf16" if device.type == "cuda" else "fp32")
        steps = args.steps if name == "240M" else max(1, args.steps // 2)
        for loop in args.loops:
            rows.append(_attempt(measure_shape, f"{name} {loop}", name, mc, tc, loop, steps, tokens_file, device,
                                 args.warmup_steps))
    return rows


# --- the miniature study ------------------------------------------------------------------------------------


def mini(args, results: Path) -> dict:
    """`magic study` on the smoke preset's two scales and two mixtures; the tables it wrote, counted."""
    command = [sys.executable, "-m", "magiclib.cli", "study", "--preset", "smoke", "--results", str(results),
               "--executor", "inline", f"mixtures=[{','.join(MINI_MIXTURES)}]"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"magic study exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    import pandas as pd

    runs = pd.read_parquet(results / "tables" / "runs.parquet")
    scores = pd.read_parquet(results / "tables" / "scores.parquet")
    scored = runs[runs["kind"] == "evaluate"] if "kind" in runs else runs.iloc[:0]
    items_per_s = float(scored["summary_items"].sum() / scored["seconds"].sum()) \
        if len(scored) and "summary_items" in scored and scored["seconds"].sum() > 0 else None
    return {"seconds": seconds, "runs": len(runs), "scored_rows": len(scores), "scoring_items_per_s": items_per_s,
            **{f"{column}s": sorted(runs[column].dropna().unique().tolist()) for column in ("mixture", "scale", "stage")}}


# --- the small preset, measured and projected ---------------------------------------------------------------


def small(args, device: torch.device, tokens_file: Path) -> dict:
    """Seconds per step of each `small` shape, and the `small` study's training time projected from them."""
    cfg = load_config("small")
    n_mixtures = len(cfg.mixtures or cfg.all_mixtures())
    sft_examples = _sft_examples(cfg)
    shapes, total = [], 0.0
    for name, scale in cfg.scales.items():
        mc, tc = (TINY_MODEL, TrainConfig(batch_size=4, micro_batch_size=2, seq_len=32, precision="fp32")) \
            if args.tiny else (scale.model, TrainConfig(**{**vars(scale.pretrain), "precision": "bf16"}))
        row = measure_shape(name, mc, tc, "ours", args.small_steps, tokens_file, device, args.warmup_steps)
        pt_steps = scale.pretrain.max_steps
        sft_steps = math.ceil(scale.sft.epochs * sft_examples / scale.sft.batch_size) if sft_examples else None
        # SFT steps are at most as long as pretraining steps (same batch and length, shorter padded rows).
        seconds = row["step_s"] * (pt_steps + (sft_steps or 0)) * n_mixtures * len(cfg.scale_seeds(name))
        shapes.append({**row, "pretrain_steps": pt_steps, "sft_steps": sft_steps, "projected_s": seconds})
        total += seconds
    return {"shapes": shapes, "mixtures": n_mixtures, "sft_examples": sft_examples,
            "projected_training_h": total / 3600, "within_1h": total <= 3600}


def _sft_examples(cfg) -> int | None:
    """Rows of the SFT mix the `small` study fine-tunes on (its max_examples, else the mirror's count)."""
    if cfg.sft_data.max_examples:
        return cfg.sft_data.max_examples
    mirror = paths.find_mirror()
    path = mirror / "sft" / "tulu-mini" / "train.jsonl" if mirror else None
    if path is None or not path.exists():
        return None
    with open(path) as handle:
        return sum(1 for _ in handle)


# --- packing the mirror subset for the device machine ------------------------------------------------------


def pack_data(target: Path, mirror: Path | None = None) -> dict:
    """Copy the first rows of every mirror file the smoke study reads into `target` (a few MB)."""
    mirror = mirror or paths.require_mirror()
    with io.atomic_path(target) as tmp:
        for source in sorted(mirror.rglob("*")):
            relative = source.relative_to(mirror)
            top = relative.parts[0]
            if not source.is_file() or top not in PACKED_LINES or "raw" in relative.parts:
                continue
            out = tmp / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            if source.name.endswith(".jsonl.gz"):
                with gzip.open(source, "rt") as src, gzip.open(out, "wt") as dst:
                    dst.writelines(_head(src, PACKED_LINES[top]))
            elif source.suffix == ".jsonl":
                with open(source) as src, open(out, "w") as dst:
                    dst.writelines(_head(src, PACKED_LINES[top]))
            elif source.stat().st_size < 1_000_000:
                shutil.copy2(source, out)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return {"path": str(target), "bytes": size}


def _head(lines, n: int):
    for i, line in enumerate(lines):
        if i == n:
            return
        yield line


# --- running the parts, recording, printing -----------------------------------------------------------------


def _attempt(fn, label: str, *args) -> dict:
    """Run one measurement; on failure record the error (the rest of the check still runs)."""
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - a failed part is a result of the check, not its end
        traceback.print_exc()
        return {"label": label, "error": f"{type(err).__name__}: {err}"[:2000]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "python": platform.python_version(), "cuda": torch.version.cuda,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    bf16 = device.type == "cuda"
    info["peak_flops_used"] = train.peak_flops(device.type, info["device"] if bf16 else "", bf16)
    return info


def print_table(record: dict) -> None:
    print(f"device: {record['machine']['device']}; torch {record['machine']['torch']}; "
          f"peak used for MFU {record['machine']['peak_flops_used'] / 1e12:.3g} TFLOP/s")
    rows = record.get("throughput", [])
    if rows:
        print(f"{'shape':>6} {'loop':>9} {'batch':>22} {'s/step':>7} {'tokens/s':>11} {'MFU':>6} {'mem GiB':>8}")
        for r in rows:
            if "error" in r:
                print(f"{r['label']:>16}: failed: {r['error'][:100]}")
                continue
            mem = f"{r['peak_mem_GiB']:8.1f}" if r["peak_mem_GiB"] is not None else f"{'-':>8}"
            print(f"{r['shape']:>6} {r['loop']:>9} {r['batch']:>22} {r['step_s']:>7.3f} {r['tokens_per_s']:>11,.0f} "
                  f"{r['mfu']:>6.1%} {mem}")
        for shape in PAPER_RUNS:
            by_loop = {r["loop"]: r["tokens_per_s"] for r in rows if r.get("shape") == shape}
            if "plain" in by_loop:
                ratios = ", ".join(f"{loop} {tps / by_loop['plain']:.2f}x" for loop, tps in by_loop.items()
                                   if loop != "plain")
                print(f"{shape}: tokens/s against the plain loop: {ratios}")
    if "mini" in record:
        print(f"mini: {record['mini']}")
    if "small" in record and "error" not in record["small"]:
        s = record["small"]
        for r in s["shapes"]:
            print(f"small {r['shape']}: {r['step_s']:.3f} s/step, {r['tokens_per_s']:,.0f} tokens/s, "
                  f"projected {r['projected_s'] / 60:.1f} min for {r['pretrain_steps']} PT + {r['sft_steps']} SFT "
                  f"steps x {s['mixtures']} mixtures")
        print(f"small study, training only: {s['projected_training_h']:.2f} h projected on this device")
    elif "small" in record:
        print(f"small: failed: {record['small']['error'][:200]}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--loops", nargs="+", choices=["ours", "compiled", "plain"],
                        default=["ours", "compiled", "plain"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the 240M shape (1B: half)")
    parser.add_argument("--small-steps", type=int, default=300, help="timed steps of each small shape")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps before each measurement")
    parser.add_argument("--tiny", action="store_true", help="toy shapes (a CPU check of the script itself)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/gpu_check.json"))
    parser.add_argument("--pack-data", type=Path, default=None, metavar="DIR",
                        help="only copy the mirror subset the miniature needs into DIR, then exit")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.small_steps < 1 or args.warmup_steps < 0:
        parser.error("--steps and --small-steps must be at least 1, --warmup-steps at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pack_data:
        print(json.dumps(pack_data(args.pack_data)))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        print("bench/gpu_check.py found no CUDA device (torch.cuda.is_available() is False); run it on a GPU "
              "machine, or add --tiny to check the script itself on the CPU", file=sys.stderr)
        return 2
    record = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": machine(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory() as tmp:
        tokens_file = Path(tmp) / "tokens.npy"  # random ids: throughput does not depend on the text
        vocab = TINY_MODEL.vocab_size if args.tiny else 16_384
        n_tokens = 20_000 if args.tiny else 4_000_000
        np.save(tokens_file, np.random.default_rng(0).integers(0, vocab, n_tokens, dtype=np.uint32))
        for part in args.parts:
            started = time.perf_counter()
            if part == "throughput":
                record[part] = throughput(args, device, tokens_file)
            elif part == "mini":
                record[part] = _attempt(mini, part, args, Path(tmp) / "mini")
            else:
                record[part] = _attempt(small, part, args, device, tokens_file)
            record.setdefault("part_seconds", {})[part] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(args.out, record)
    print_table(record)
    print(f"record: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
