"""The data pipeline: raw pools -> filtered, decontaminated pools -> tokenizer -> one token array per mixture.

The study runner calls the four steps below; each writes into a folder the runner owns.

    prepare_pools(cfg, out_dir) -> dict                     sources, filters, dedup, decontamination
    build_tokenizer(cfg, pools_dir, out_dir) -> None        byte-level BPE, or a pretrained tokenizer
    build_mixture(cfg, mixture, pools_dir, tokenizer_dir, out_dir, seed) -> dict    tokens/*.npy + stats.json
    data_table(summaries) -> DataFrame                      the table `magic data` prints
"""

import importlib

# Imported on first use: the training loader needs only `data.shards`, not the filters' libraries.
_HOME = {"build_mixture": "mixtures", "build_tokenizer": "tokenizer", "data_table": "report",
         "prepare_pools": "pools"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
