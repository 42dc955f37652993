"""Cost and learning of the mini scales on ONE CPU thread, as the study runs them (2 workers x 1 thread).

For each scale of a preset (default `mini`), pretrains on one mixture and fine-tunes on the SFT mix with
the preset's exact settings, then prints side by side: parameters, tokens, seconds, tokens/s, MFU, the
final pretraining loss against the unigram entropy of the mixture's tokens (the loss a model that ignores
context can reach), and the SFT loss on assistant tokens at the start and end. Builds the study's data
first if the results folder lacks it (about 2 minutes for mini).

    python bench/cpu_mini_scales.py [--preset mini] [--mixture V1-P0] [--results DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from magiclib import runner, steps, train
from magiclib.config import load_config
from magiclib.data.shards import TokenShards
from magiclib.model import count_parameters
from magiclib.results import results_dir


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy (nats per token) of the token frequencies: the loss of the best context-free predictor."""
    p = np.bincount(tokens) / tokens.size
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--mixture", default="V1-P0")
    parser.add_argument("--results", default=None, help="results folder holding (or to hold) the study's data")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(1)
    cfg = load_config(args.preset)
    results = results_dir(cfg, args.results)
    seed = cfg.seeds[0]
    tokens_path = steps.mixture_dir(cfg, results, args.mixture, seed) / "tokens"
    if not tokens_path.exists():
        runner.run_data(cfg, results)
    shards = TokenShards(tokens_path)
    entropy = unigram_entropy(shards[0:len(shards)])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, scale in cfg.scales.items():
            scale.pretrain.threads = scale.sft.threads = 1
            pt = train.pretrain(scale, tokens_path, steps.tokenizer_dir(cfg, results), Path(tmp) / name / "pt", seed)
            sft = train.sft(scale, Path(tmp) / name / "pt" / "model", steps.sft_data_dir(cfg, results),
                            Path(tmp) / name / "sft", seed)
            sft_log = pd.read_parquet(Path(tmp) / name / "sft" / "loss.parquet")
            rows.append({
                "scale": name, "params_M": count_parameters(scale.model)["total"] / 1e6,
                "pt_tokens_k": pt["tokens_seen"] / 1e3, "pt_s": pt["seconds"], "pt_tok_s": pt["tokens_per_s"],
                "pt_mfu": pt["mfu"], "pt_loss": pt["final_loss"], "unigram": entropy,
                "below_unigram": entropy - pt["final_loss"], "sft_tokens_k": sft["tokens_seen"] / 1e3,
                "sft_s": sft["seconds"], "sft_tok_s": sft["tokens_per_s"], "sft_loss_first": sft_log["loss"].iloc[0],
                "sft_loss_last": sft_log["loss"].iloc[-1],
            })
    table = pd.DataFrame(rows).set_index("scale").T
    print(f"preset {args.preset}, mixture {args.mixture}, 1 torch thread, {os.cpu_count()} cores on this machine")
    print(table.to_string(float_format=lambda v: f"{v:,.3f}"))
    if len(rows) == 2:
        small, large = rows
        print(f"{large['scale']} / {small['scale']}: params x{large['params_M'] / small['params_M']:.2f}, "
              f"pretraining time x{large['pt_s'] / small['pt_s']:.2f}, tokens/s x{large['pt_tok_s'] / small['pt_tok_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
