"""Training throughput on this CPU: our loop beside a minimal reference loop, both against the matmul peak.

For each shape (the preset's scales plus one larger CPU shape) and batch, trains the same model from the
same initialisation on the same token windows twice: with `magiclib.train.run_training` (the loop the study
uses: schedule, accumulation, clipping, logging, divergence checks) and with a plain PyTorch loop (forward,
cross-entropy, backward, clip, AdamW step). It prints tokens/s, MFU against an fp32 matmul peak measured in
the same run on the same threads, and the ratio ours / reference. `--compile` adds the reference loop under
`torch.compile` (its compile time is printed apart). Writes a JSON record to bench/out/.

    python bench/train_throughput.py [--preset mini] [--threads 1] [--steps 24] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from magiclib import train
from magiclib.config import ModelConfig, TrainConfig, load_config
from magiclib.model import build_model, count_parameters, flops_per_token

LARGER_CPU_SHAPE = ModelConfig(d_model=512, n_layers=8, n_heads=8, head_dim=64, ffn_mult=4.0, vocab_size=4096,
                               context=256)
WARMUP_STEPS = 4


def stub_tokenizer() -> PreTrainedTokenizerFast:
    """The loop needs a pad id and something to save beside the model; the tokens themselves are random."""
    vocab = {"<|pad|>": 0, "<|endoftext|>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<|pad|>", eos_token="<|endoftext|>")


def ours(mc: ModelConfig, tc: TrainConfig, data, steps: int, out: Path) -> float:
    """Tokens/s of the study's loop, from its own per-interval log, warm-up interval left out."""
    rt = train.start_runtime(tc.threads)
    train.run_training("pretrain", build_model(mc, 0), data, stub_tokenizer(), mc, tc, steps, out, 0, rt, None)
    log = pd.read_parquet(out / "loss.parquet")
    return float(log["tokens_per_s"].iloc[1:].median())


def reference(mc: ModelConfig, tc: TrainConfig, data, steps: int, compile_model: bool) -> tuple[float, float]:
    """Tokens/s of a plain loop on the same batches; returns (tokens/s, compile seconds)."""
    model = build_model(mc, 0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    forward = torch.compile(model) if compile_model else model
    compile_seconds, timed, tokens = 0.0, 0.0, 0
    for step in range(steps):
        indices = train.batch_indices(step, tc.batch_size, len(data), 0)
        x, y = (torch.from_numpy(np.stack(a).astype(np.int64)) for a in zip(*(data[i] for i in indices), strict=True))
        start = time.perf_counter()
        logits = forward(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        if step == 0 and compile_model:
            compile_seconds = seconds
        if step >= WARMUP_STEPS:
            timed += seconds
            tokens += x.numel()
    return tokens / timed, compile_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study: 1 per worker)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batches", default="2,8", help="sequences per step to try (the mini preset uses 2)")
    parser.add_argument("--compile", action="store_true", help="also time the reference under torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.preset)
    shapes = {name: scale.model for name, scale in cfg.scales.items()} | {"cpu-xl": LARGER_CPU_SHAPE}
    peak = train._measured_matmul_flops(torch.device("cpu"), torch.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, mc in shapes.items():
            for batch in (int(b) for b in args.batches.split(",")):
                seq = min(256, mc.context)
                tc = TrainConfig(batch_size=batch, micro_batch_size=batch, seq_len=seq, max_steps=args.steps,
                                 log_every=WARMUP_STEPS, warmup_steps=2, threads=args.threads)
                tokens_path = Path(tmp) / f"{name}-{batch}.npy"
                rng = np.random.default_rng(0)
                np.save(tokens_path, rng.integers(3, mc.vocab_size, size=(args.steps + 1) * batch * (seq + 1),
                                                  dtype=np.uint16))
                data = train.TokenWindows(tokens_path, seq, mc.vocab_size)
                flops = flops_per_token(mc, seq)
                ours_tps = ours(mc, tc, data, args.steps, Path(tmp) / f"run-{name}-{batch}")
                ref_tps, _ = reference(mc, tc, data, args.steps, False)
                row = {"shape": name, "params_M": count_parameters(mc)["total"] / 1e6, "batch": f"{batch}x{seq}",
                       "ours_tok_s": ours_tps, "ref_tok_s": ref_tps, "ours/ref": ours_tps / ref_tps,
                       "ours_mfu": ours_tps * flops / peak, "ref_mfu": ref_tps * flops / peak}
                if args.compile:
                    compiled_tps, compile_s = reference(mc, tc, data, args.steps, True)
                    row |= {"compiled_tok_s": compiled_tps, "compiled/ref": compiled_tps / ref_tps,
                            "compile_s": compile_s}
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:,.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nfp32 matmul peak on {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    record = {"peak_flops": peak, "threads": args.threads, "steps": args.steps, "rows": rows,
              "torch": torch.__version__, "machine": platform.machine(), "cores": os.cpu_count(),
              "mini_scales": {n: dataclasses.asdict(s.model) for n, s in cfg.scales.items()}}
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "train_throughput.json").write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
