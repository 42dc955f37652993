"""The data pipeline: raw pools -> filtered, decontaminated pools -> tokenizer -> one token array per mixture.

The study runner calls the four steps below; each writes into a folder the runner owns.

    prepare_pools(cfg, out_dir) -> dict                     sources, filters, dedup, decontamination
    build_tokenizer(cfg, pools_dir, out_dir) -> None        byte-level BPE, or a pretrained tokenizer
    build_mixture(cfg, mixture, pools_dir, tokenizer_dir, out_dir, seed) -> dict    tokens.npy + stats.json
    data_table(summaries) -> DataFrame                      the table `magic data` prints
"""

from .mixtures import build_mixture
from .pools import prepare_pools
from .report import data_table
from .tokenizer import build_tokenizer

__all__ = ["build_mixture", "build_tokenizer", "data_table", "prepare_pools"]
