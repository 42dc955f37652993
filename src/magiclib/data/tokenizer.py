"""Step 2 of the data pipeline: the study's tokenizer, saved as a Hugging Face fast tokenizer.

Small presets train a byte-level BPE with `tokenizers` on documents sampled from the prepared pools in
the study's average web/code/curated shares; the paper preset loads a standard pretrained tokenizer by
name. Either way the saved tokenizer has eos `<|endoftext|>` (or the pretrained one's own eos), pad
`<|pad|>`, and the Tulu chat markers as additional special tokens, and fits every model's embedding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..config import ConfigError, StudyConfig
from .blocks import PoolRowsReader, pool_rows
from .pools import SAMPLE_SEED, pool_path, study_pools

EOS = "<|endoftext|>"
PAD = "<|pad|>"
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
MAX_TRAIN_CHARS = 4000  # of each training document: BPE merges settle quickly, and this bounds the cost


def build_tokenizer(cfg: StudyConfig, pools_dir: Path, out_dir: Path) -> None:
    """Train (or load) the tokenizer and save it to `out_dir`, loadable with AutoTokenizer.from_pretrained."""
    embedding = min(scale.model.vocab_size for scale in cfg.scales.values())
    if cfg.data.tokenizer:
        pretrained = AutoTokenizer.from_pretrained(cfg.data.tokenizer)
        tokenizer = _wrap(pretrained.backend_tokenizer, pretrained.eos_token or EOS)
    else:
        if cfg.data.vocab_size > embedding:
            raise ConfigError(f"data.vocab_size = {cfg.data.vocab_size} exceeds the smallest model.vocab_size "
                              f"({embedding}); make them equal in the preset")
        tokenizer = _wrap(train_bpe(training_texts(cfg, pools_dir), cfg.data.vocab_size), EOS)
    if len(tokenizer) > embedding:
        raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but the smallest model.vocab_size is "
                          f"{embedding}; raise model.vocab_size to at least {len(tokenizer)}")
    _save(tokenizer, Path(out_dir))


def train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (GPT-2 style) whose vocabulary, special tokens included, has `vocab_size` entries."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD, *CHAT_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def training_texts(cfg: StudyConfig, pools_dir: Path) -> list[str]:
    """`data.tokenizer_train_docs` documents, split over web/code/curated by the study's mean proportions."""
    roles = {"web": list(cfg.web_sources),
             "code": [p for p in study_pools(cfg) if p not in cfg.data.curated_pools],
             "curated": list(cfg.data.curated_pools)}
    rng = np.random.default_rng(SAMPLE_SEED)
    texts = []
    for role, pools in roles.items():
        share = np.mean([getattr(p, role) for p in cfg.proportions.values()])
        per_pool = round(cfg.data.tokenizer_train_docs * share / max(1, len(pools)))
        for pool in pools:
            path = pool_path(pools_dir, pool)
            n_rows = pool_rows(path)
            pick = np.sort(rng.choice(n_rows, size=min(per_pool, n_rows), replace=False))
            # only the picked rows are read (row group by row group), whatever the pool's size
            texts += [doc.text[:MAX_TRAIN_CHARS] for doc in PoolRowsReader(path, pick).run()]
    return texts


def _wrap(backend: Tokenizer, eos: str) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=PAD,
                                   additional_special_tokens=CHAT_TOKENS)


def _save(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    # Write beside the target, then rename file by file: a crash never leaves a half-written tokenizer.
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tokenizer-") as staging:
        tokenizer.save_pretrained(staging)
        for name in sorted(os.listdir(staging)):
            os.replace(Path(staging) / name, out_dir / name)
