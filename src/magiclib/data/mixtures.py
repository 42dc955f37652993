"""Step 3 of the data pipeline: one mixture's pretraining tokens, sampled by token proportion.

A mixture such as `V2-P1` takes its web share from web source V2, its code share split evenly over
V2's code pools and its curated share split evenly over `data.curated_pools`, to `data.tokens_per_mixture`
tokens in all. Each pool is read in a seeded random order, reshuffled at every pass; a small pool is
repeated and its epochs (documents drawn / documents in the pool) are reported. The pool's last document
is cut so that its tokens hit the target exactly. Documents of all pools are then shuffled together and
written as one flat stream, an eos token after each document, in `.npy` shards: `tokens/00000.npy`, ...,
with `stats.json` beside them.

Documents are tokenized by datatrove blocks (`blocks.py`) in `data.tasks` parallel tasks, only when a draw
first needs them, into a per-pool `TokenStore` that every mixture of the study shares (it sits in the
tokenizer's folder, keyed by the pool file). Memory holds a few integers per drawn document and one write
buffer, never a pool's texts or a mixture's tokens; the output does not depend on the number of tasks.
"""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .. import io
from ..config import ConfigError, StudyConfig
from ..errors import BadValue, MissingFile
from . import blocks, shards
from .pools import pool_path

FIRST_BATCH = 16  # documents drawn before the pool's tokens per document are known
MIN_DOCS_PER_TASK = 500  # per task; a round under this is tokenized in this process (workers cost seconds)
STORE_SUBDIR = "pool-tokens"
EOS_FALLBACK = "<|endoftext|>"


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
                  seed: int, shard_tokens: int = shards.SHARD_TOKENS) -> dict:
    """Sample, tokenize, shuffle and write one mixture's tokens; returns (and writes) its stats."""
    targets = mixture_targets(cfg, mixture)
    total = sum(target for _, target in targets.values())
    tokenizer = StudyTokenizer(Path(tokenizer_dir))
    stores, drawn, pools = [], [], {}
    for pool, (role, target) in targets.items():
        store = pool_store(Path(pools_dir), pool, tokenizer)
        rows = draw_tokens(store, target, np.random.default_rng([seed, zlib.crc32(pool.encode())]),
                           cfg.data.tasks)
        stores.append(store)
        drawn.append(rows)
        pools[pool] = {"role": role, "docs": len(rows), "tokens": target,
                       "epochs": round(len(rows) / len(store.store.length), 4),
                       "target_share": target / total, "actual_share": target / total}
    order = np.random.default_rng([seed, zlib.crc32(mixture.encode())]).permutation(sum(map(len, drawn)))
    shards.write_shards(Path(out_dir) / "tokens", gather(stores, drawn, targets, order), total,
                        tokenizer.dtype, shard_tokens)
    stats = {"mixture": mixture, "seed": seed, "tokens": total, "dtype": tokenizer.dtype.name,
             "vocab_size": tokenizer.vocab_size, "documents": int(len(order)), "pools": pools}
    io.write_json(Path(out_dir) / "stats.json", stats)
    for store in stores:
        store.store.close()
    return stats


class StudyTokenizer:
    """What the data step needs of the saved tokenizer: its file, eos, vocabulary size and token dtype."""

    def __init__(self, tokenizer_dir: Path):
        self.dir = tokenizer_dir
        self.file = tokenizer_dir / "tokenizer.json"
        if not self.file.exists():
            raise MissingFile(f"no tokenizer at {tokenizer_dir}; run build_tokenizer (`magic data`) first")
        config = io.read_json(tokenizer_dir / "tokenizer_config.json")
        self.eos = config.get("eos_token") or EOS_FALLBACK
        self.vocab_size = Tokenizer.from_file(str(self.file)).get_vocab_size(with_added_tokens=True)
        self.dtype = shards.token_dtype(self.vocab_size)


class PoolStore:
    """A prepared pool and its store of tokenized documents, with what tokenizing more of it needs."""

    def __init__(self, path: Path, store: shards.TokenStore, tokenizer: StudyTokenizer):
        self.path, self.store, self.tokenizer = path, store, tokenizer

    def tokenize(self, rows: np.ndarray, tasks: int) -> None:
        """Tokenize these (sorted, not yet stored) rows in up to `tasks` parallel tasks."""
        tasks = max(1, min(tasks, len(rows) // MIN_DOCS_PER_TASK))
        pipeline = [blocks.PoolRowsReader(self.path, rows),
                    blocks.TokenizeToStore(self.store.folder, self.tokenizer.file, self.tokenizer.eos,
                                           self.tokenizer.dtype)]
        with tempfile.TemporaryDirectory(prefix="datatrove-logs-") as logs:
            blocks.run_pipeline(pipeline, tasks, logs)
        self.store.refresh()


def pool_store(pools_dir: Path, pool: str, tokenizer: StudyTokenizer) -> PoolStore:
    """The shared store of `pool`'s tokens under the tokenizer's folder, keyed by the pool file's identity
    (so a store is never used with another pool's rows)."""
    path = pool_path(pools_dir, pool)
    n_rows = blocks.pool_rows(path)
    if not n_rows:
        raise BadValue(f"pool {pool!r} in {pools_dir} has no documents left after filtering; "
                       "raise data.docs_per_pool or lower the filters' keep fractions")
    files = blocks.pool_files(path)
    key = hashlib.sha1(repr([(str(f.resolve()), f.stat().st_size) for f in files]).encode()).hexdigest()[:12]
    folder = tokenizer.dir / STORE_SUBDIR / f"{pool}-{key}"
    return PoolStore(path, shards.TokenStore(folder, n_rows, tokenizer.dtype), tokenizer)


class DrawOrder:
    """The pool rows in draw order: a seeded permutation of the pool, a new one at every pass."""

    def __init__(self, n_rows: int, rng: np.random.Generator):
        self.n_rows, self.rng = n_rows, rng
        self.pending = np.empty(0, dtype=np.int64)

    def take(self, count: int) -> np.ndarray:
        while len(self.pending) < count:
            self.pending = np.concatenate([self.pending, self.rng.permutation(self.n_rows)])
        out, self.pending = self.pending[:count], self.pending[count:]
        return out


def draw_tokens(pool: PoolStore, target: int, rng: np.random.Generator, tasks: int = 1) -> np.ndarray:
    """The rows drawn in random order, a new order each pass, until `target` tokens (each document with
    its eos); the last one is cut to fit when it is written. Tokenizes the rows it needs on the way."""
    store, order = pool.store, DrawOrder(len(pool.store.length), rng)
    drawn: list[np.ndarray] = []
    have = count = 0
    while have < target:
        # Ask for about as many documents as the tokens still missing need, judged by those drawn so far.
        batch = FIRST_BATCH if not count else max(1, int((target - have) / (have / count) * 1.1) + 1)
        rows = order.take(batch)
        if len(missing := store.missing(rows)):
            pool.tokenize(missing, tasks)
        ends = have + np.cumsum(store.length[rows])
        stop = int(np.searchsorted(ends, target)) + 1  # the first document that reaches the target is the last
        drawn.append(rows[:stop])
        have, count = int(ends[min(stop, len(rows)) - 1]), count + min(stop, len(rows))
    return np.concatenate(drawn)


def gather(pools: list[PoolStore], drawn: list[np.ndarray], targets: dict, order: np.ndarray):
    """The mixture's token stream: drawn documents in `order` (an index into all pools' drawn rows, pool
    after pool), each pool's last document cut to its first tokens plus eos so the pool meets its target."""
    which = np.repeat(np.arange(len(drawn)), [len(rows) for rows in drawn])
    rows = np.concatenate(drawn)
    last = np.cumsum([len(r) for r in drawn]) - 1
    cut = {}  # document index -> its length once cut
    for p, (pool, (_, target)) in enumerate(zip(pools, targets.values(), strict=True)):
        cut[int(last[p])] = target - int(pool.store.length[drawn[p][:-1]].sum())
    buffer, held = [], 0
    for i in order.tolist():
        tokens = pools[which[i]].store.read(int(rows[i]))
        if i in cut:
            tokens = np.append(tokens[:cut[i] - 1], tokens[-1])
        buffer.append(tokens)
        held += len(tokens)
        if held >= shards.WRITE_BUFFER:
            yield np.concatenate(buffer)
            buffer, held = [], 0
    if buffer:
        yield np.concatenate(buffer)
