"""Step 3 of the data pipeline: one mixture's pretraining tokens, sampled by token proportion.

A mixture such as `V2-P1` takes its web share from web source V2, its code share split evenly over
V2's code pools and its curated share split evenly over `data.curated_pools`, to `data.tokens_per_mixture`
tokens in all. Each pool is read in a seeded random order, reshuffled at every pass; a small pool is
repeated and its epochs (documents drawn / documents in the pool) are reported. The pool's last document
is cut so that its tokens hit the target exactly. Documents of all pools are then shuffled together and
written as one flat array, an eos token after each document: `tokens.npy`, with `stats.json` beside it.
"""

from __future__ import annotations

import functools
import itertools
import zlib
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from .. import io
from ..config import ConfigError, StudyConfig
from ..errors import BadValue
from .pools import read_pool

FIRST_BATCH = 16  # documents tokenized before the pool's tokens per document are known


def mixture_targets(cfg: StudyConfig, mixture: str) -> dict[str, tuple[str, int]]:
    """Pool name -> (role, target tokens) for a mixture name such as 'V2-P1'."""
    web, props = cfg.mixture(mixture)
    groups = {"web": [mixture.split("-", 1)[0]], "code": web.code_pools, "curated": cfg.data.curated_pools}
    targets = {}
    for role, pools in groups.items():
        share = getattr(props, role)
        if share > 0 and not pools:
            raise ConfigError(f"mixture {mixture} gives {role} a share of {share} but has no {role} pools; "
                              f"list some in {'web_sources.<V>.code_pools' if role == 'code' else 'data.curated_pools'}")
        for pool in pools:
            targets[pool] = (role, round(cfg.data.tokens_per_mixture * share / len(pools)))
    return {pool: target for pool, target in targets.items() if target[1] > 0}


def build_mixture(cfg: StudyConfig, mixture: str, pools_dir: Path, tokenizer_dir: Path, out_dir: Path,
                  seed: int) -> dict:
    """Sample, tokenize, shuffle and write one mixture's tokens; returns (and writes) its stats."""
    targets = mixture_targets(cfg, mixture)
    total = sum(target for _, target in targets.values())
    documents, pools = [], {}
    for pool, (role, target) in targets.items():
        encoded = pool_tokens(str(pools_dir), str(tokenizer_dir), pool)
        rng = np.random.default_rng([seed, zlib.crc32(pool.encode())])
        docs, drawn = draw_tokens(encoded, target, rng)
        documents += docs
        drawn_tokens = sum(map(len, docs))
        pools[pool] = {"role": role, "docs": drawn, "tokens": drawn_tokens, "epochs": round(drawn / len(encoded), 4),
                       "target_share": target / total, "actual_share": drawn_tokens / total}
    order = np.random.default_rng([seed, zlib.crc32(mixture.encode())]).permutation(len(documents))
    vocab_size = len(_tokenizer(str(tokenizer_dir)))
    dtype = np.uint16 if vocab_size < 2**16 else np.uint32
    flat = np.concatenate([documents[i] for i in order]).astype(dtype)
    with io.atomic_path(Path(out_dir) / "tokens.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, flat)
    stats = {"mixture": mixture, "seed": seed, "tokens": int(len(flat)), "dtype": np.dtype(dtype).name,
             "vocab_size": vocab_size, "documents": len(documents), "pools": pools}
    io.write_json(Path(out_dir) / "stats.json", stats)
    return stats


class PoolTokens:
    """A prepared pool's documents, each tokenized (with an eos appended) on first use and then kept.

    The mixtures of a study draw from the same pools in the same seeded order, so a process that builds
    several mixtures tokenizes each document once.
    """

    def __init__(self, texts: list[str], tokenizer):
        self.texts = texts
        self.tokenizer = tokenizer
        self.encoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def get(self, indices: list[int]) -> list[np.ndarray]:
        new = [i for i in dict.fromkeys(indices) if i not in self.encoded]
        if new:
            ids = self.tokenizer([self.texts[i] for i in new], add_special_tokens=False)["input_ids"]
            for i, doc in zip(new, ids, strict=True):
                self.encoded[i] = np.array([*doc, self.tokenizer.eos_token_id], dtype=np.int64)
        return [self.encoded[i] for i in indices]


@functools.lru_cache(maxsize=32)
def pool_tokens(pools_dir: str, tokenizer_dir: str, pool: str) -> PoolTokens:
    """The pool's `PoolTokens`, shared by every mixture built in this process. Keyed by folder paths,
    which is safe because the runner names data folders by the hash of what they hold."""
    texts = read_pool(Path(pools_dir), pool)["text"].tolist()
    if not texts:
        raise BadValue(f"pool {pool!r} in {pools_dir} has no documents left after filtering; "
                       "raise data.docs_per_pool or lower the filters' keep fractions")
    return PoolTokens(texts, _tokenizer(tokenizer_dir))


@functools.lru_cache(maxsize=4)
def _tokenizer(tokenizer_dir: str):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def draw_tokens(pool: PoolTokens, target: int, rng: np.random.Generator) -> tuple[list[np.ndarray], int]:
    """Documents (token ids + eos) drawn in random order, a new order each pass, until `target` tokens;
    the last one cut to fit (keeping its eos). Returns the documents and how many were drawn."""
    order = itertools.chain.from_iterable(rng.permutation(len(pool)) for _ in itertools.count())
    docs, have = [], 0
    while have < target:
        # Ask for about as many documents as the tokens still missing need, judged by those drawn so far.
        batch = FIRST_BATCH if not docs else max(1, int((target - have) / (have / len(docs)) * 1.1) + 1)
        for ids in pool.get(list(itertools.islice(order, batch))):
            if have + len(ids) > target:
                ids = np.append(ids[:target - have - 1], ids[-1])
            docs.append(ids)
            have += len(ids)
            if have >= target:
                break
    return docs, len(docs)
