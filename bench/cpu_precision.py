"""fp32 against bf16 autocast on this CPU, per shape of the mini and small presets: training and scoring speed.

For each scale of the presets it measures, side by side in one run on the same threads: training tokens/s of
the study's loop (`train.run_training`, via train_throughput.ours) in fp32 and under bf16 autocast, scoring
items/s of `scorer.score_items` in both, the fp32 and bf16 matmul peaks of this machine (1024^3, fastest of 5),
MFU of each against the peak of its own precision and against the fp32 peak, and the decision
`precision: auto` takes here (precision.measure_passes, timed now, not read from the cache).

Training uses random tokens (the speed does not depend on them), at the preset's micro-batch but at most
`--max-tokens` tokens a step, so the small shapes stay affordable on one core. Scoring uses the real
benchmark items, tokenized with a trained BPE of the mini study (vocabulary 4096; any id fits every shape).

    python bench/cpu_precision.py [--presets mini,small] [--threads 1] [--steps 12] [--items 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from train_throughput import ours

from magiclib import benchmarks, precision, scorer, train
from magiclib.config import load_config
from magiclib.model import build_model, count_parameters, flops_per_token

PRECISIONS = ("fp32", "bf16")


def matmul_peak(dtype: torch.dtype) -> float:
    return 2 * 1024**3 / precision.matmul_seconds(dtype, 1024, repeats=5)


def train_speed(mc, tc, steps: int, workdir: Path, name: str) -> float:
    tokens_path = workdir / f"{name}.npy"
    rng = np.random.default_rng(0)
    np.save(tokens_path, rng.integers(3, mc.vocab_size, size=(steps + 1) * tc.batch_size * (tc.seq_len + 1),
                                      dtype=np.uint16))
    data = train.TokenWindows(tokens_path, tc.seq_len, mc.vocab_size)
    return ours(mc, tc, data, steps, workdir / f"run-{name}")


def score_speed(mc, tokenizer, items, batch_size: int, computed_in: str) -> float:
    model = build_model(mc, 0)
    scorer.score_items(model, tokenizer, items[:batch_size], batch_size, None, False, computed_in)  # warm up
    started = time.perf_counter()
    scorer.score_items(model, tokenizer, items, batch_size, None, False, computed_in)
    return len(items) / (time.perf_counter() - started)


def mini_tokenizer():
    """A mini study's trained BPE: results/mini, else the first one found under $MAGIC_RESULTS or /tmp."""
    from transformers import AutoTokenizer

    for root in (Path(__file__).resolve().parents[1] / "results" / "mini", Path(tempfile.gettempdir())):
        found = sorted(root.glob("**/data/tokenizer-*/tokenizer.json"))
        if found:
            return AutoTokenizer.from_pretrained(found[0].parent)
    raise SystemExit("no trained tokenizer found: run `magic data --preset mini` first")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="mini,small")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study: 1 per worker)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=1024, help="tokens per training step at most")
    parser.add_argument("--items", type=int, default=5, help="items per benchmark to score (20 benchmarks)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    tokenizer = mini_tokenizer()
    items = [item for name in benchmarks.STUDY_BENCHMARKS for item in benchmarks.load_items(name, args.items, 0)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            cfg = load_config(preset)
            for name, scale in cfg.scales.items():
                mc, pt = scale.model, scale.pretrain
                seq = min(pt.seq_len, args.max_tokens)
                micro = max(1, min(pt.micro_batch_size, args.max_tokens // seq))
                fp32_s, bf16_s = precision.measure_passes(mc, "train", precision.measured_shape(
                    "train", mc, pt.micro_batch_size, pt.seq_len), args.threads)
                row = {"shape": name, "params_M": count_parameters(mc)["total"] / 1e6, "train_batch": f"{micro}x{seq}",
                       "auto_train": "bf16" if fp32_s / bf16_s >= precision.BF16_MIN_SPEEDUP else "fp32"}
                flops = flops_per_token(mc, seq)
                for computed_in in PRECISIONS:
                    tc = dataclasses.replace(pt, batch_size=micro, micro_batch_size=micro, seq_len=seq,
                                             max_steps=args.steps, log_every=3, warmup_steps=2,
                                             threads=args.threads, checkpoint_every=None, precision=computed_in)
                    tok_s = train_speed(mc, tc, args.steps, Path(tmp), f"{name}-{computed_in}")
                    row[f"{computed_in}_tok_s"] = tok_s
                    row[f"{computed_in}_mfu"] = tok_s * flops / peaks[computed_in]
                    row[f"{computed_in}_mfu_vs_fp32_peak"] = tok_s * flops / peaks["fp32"]
                    row[f"{computed_in}_items_s"] = score_speed(mc, tokenizer, items, cfg.eval.batch_size,
                                                                computed_in)
                row["train_bf16/fp32"] = row["bf16_tok_s"] / row["fp32_tok_s"]
                row["score_bf16/fp32"] = row["bf16_items_s"] / row["fp32_items_s"]
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:,.3f}"), flush=True)
    table = pd.DataFrame(rows)
    load = os.getloadavg()
    print(f"\n{precision.cpu_model()}, {os.cpu_count()} cores, {args.threads} torch thread(s), torch "
          f"{torch.__version__}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"matmul peak 1024^3: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s "
          f"({peaks['bf16'] / peaks['fp32']:.1f}x); scoring {len(items)} items")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    record = {"cpu": precision.cpu_model(), "peaks": peaks, "threads": args.threads, "load_average": load,
              "rows": rows, "torch": torch.__version__, "machine": platform.machine(), "cores": os.cpu_count(),
              "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "cpu_precision.json").write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
