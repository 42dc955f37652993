"""Throughput of the paper's shapes on one GPU: tokens/s and MFU of our training step in bf16.

Trains the 240M shape for a few hundred steps and the 1B shape for a few, on random tokens, with the
library's own step (`train.accumulate_gradients` + AdamW, the loop's schedule and clipping), and prints
a table: tokens/s, step time, MFU against the GPU's dense bf16 peak (H100/H200: 989 TFLOP/s; override with
$MAGIC_PEAK_FLOPS), and peak memory. Needs a CUDA GPU; exits at once without one. About 2-3 minutes on an H100.

    python bench/gpu_paper_shapes.py [--steps-240m 200] [--steps-1b 20] [--seq-len 4096]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from magiclib import train
from magiclib.config import load_config
from magiclib.model import build_model, count_parameters, flops_per_token

WARMUP_STEPS = 3  # not timed: kernel selection, allocator growth


def bench_shape(name: str, steps: int, batch: int, micro: int, seq_len: int, tokens_file: Path) -> dict:
    scale = load_config("paper").scale(name)
    tc = train.TrainConfig(lr=scale.pretrain.lr, batch_size=batch, micro_batch_size=micro, seq_len=seq_len,
                           warmup_steps=10, max_steps=steps, precision="bf16")
    rt = train.Runtime(rank=0, world=1, device=torch.device("cuda"), owns_group=False)
    data = train.TokenWindows(tokens_file, seq_len, scale.model.vocab_size)
    with torch.device("cuda"):  # initialise on the GPU: seconds instead of a minute on the CPU for 1B
        model = build_model(scale.model, seed=0)
    optimizer = train.make_optimizer(model, tc, rt.device)
    model.train()
    torch.cuda.reset_peak_memory_stats()
    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            torch.cuda.synchronize()
            start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = train.lr_at(step, tc, WARMUP_STEPS + steps)
        loss, _ = train.accumulate_gradients(model, data, train.batch_indices(step, batch, len(data), 0), tc, rt,
                                             pad_id=0, bf16=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_s = steps * batch * seq_len / seconds
    peak = train.peak_flops("cuda", torch.cuda.get_device_name(), True)
    result = {
        "shape": name, "params_M": count_parameters(scale.model)["total"] / 1e6, "steps": steps,
        "batch": f"{batch}x{seq_len} (micro {micro})", "step_s": seconds / steps, "tokens_per_s": tokens_per_s,
        "mfu": flops_per_token(scale.model, seq_len) * tokens_per_s / peak,
        "peak_mem_GiB": torch.cuda.max_memory_allocated() / 2**30, "final_loss": loss,
    }
    del model, optimizer
    torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps-240m", type=int, default=200)
    parser.add_argument("--steps-1b", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=4096)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu_paper_shapes.py needs a CUDA GPU and found none (torch.cuda.is_available() is False); "
              "run it on a GPU machine with a CUDA build of torch", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name()
    peak = train.peak_flops("cuda", device, True)
    print(f"device: {device}; bf16 peak used for MFU: {peak / 1e12:.0f} TFLOP/s; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tokens_file = Path(tmp) / "tokens.npy"  # random ids: throughput does not depend on the text
        np.save(tokens_file, np.random.default_rng(0).integers(0, 100_000, 4_000_000, dtype=np.uint32))
        rows = [bench_shape("240M", args.steps_240m, batch=16, micro=4, seq_len=args.seq_len, tokens_file=tokens_file),
                bench_shape("1B", args.steps_1b, batch=8, micro=2, seq_len=args.seq_len, tokens_file=tokens_file)]
    header = f"{'shape':>6} {'params':>8} {'steps':>6} {'batch':>22} {'s/step':>7} {'tokens/s':>10} {'MFU':>6} " \
             f"{'mem GiB':>8} {'loss':>6}"
    print(header)
    for r in rows:
        print(f"{r['shape']:>6} {r['params_M']:>7.0f}M {r['steps']:>6} {r['batch']:>22} {r['step_s']:>7.3f} "
              f"{r['tokens_per_s']:>10,.0f} {r['mfu']:>6.1%} {r['peak_mem_GiB']:>8.1f} {r['final_loss']:>6.2f}")
    scales = load_config("paper").scales
    flops_ratio = flops_per_token(scales["1B"].model, args.seq_len) / flops_per_token(scales["240M"].model, args.seq_len)
    print(f"tokens/s 240M : 1B = {rows[0]['tokens_per_s'] / rows[1]['tokens_per_s']:.2f} "
          f"(FLOPs/token 1B : 240M = {flops_ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
