"""Token files on disk: the sharded token stream of a mixture, and the store of a pool's tokenized documents.

A mixture's tokens are one flat stream cut into shards, `tokens/00000.npy`, `tokens/00001.npy`, ...: plain
`.npy` arrays of at most `SHARD_TOKENS` tokens each, written piece by piece so that memory never holds more
than a buffer. `TokenShards` memory-maps them back as one array (the training loader reads it so).

A pool's tokenized documents live in a `TokenStore`: pieces written by parallel tokenisation tasks, each a
raw token file plus the pool rows it holds and where each document ends. Documents are read back with
`pread`, not a memory map, so reading a large store does not make a process's resident memory grow.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .. import io
from ..errors import BadValue, MissingFile

SHARD_TOKENS = 2**26  # 64M tokens: 128 MB of uint16 per mixture shard
WRITE_BUFFER = 2**22  # tokens gathered before one write


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size < 2**16 else np.uint32)


# --- a mixture's shards --------------------------------------------------------------------------------


def write_shards(folder: Path, pieces: Iterable[np.ndarray], total: int, dtype: np.dtype,
                 shard_tokens: int = SHARD_TOKENS) -> list[dict]:
    """Write exactly `total` tokens from `pieces` as `.npy` shards in `folder` (replaced atomically);
    returns [{"file", "tokens"}] per shard. A single shard is byte for byte what np.save would write."""
    sizes = [min(shard_tokens, total - start) for start in range(0, total, shard_tokens)] or [0]
    stream = _rechunk(pieces, dtype)
    with io.atomic_path(folder) as tmp:
        tmp.mkdir()
        for i, size in enumerate(sizes):
            with open(tmp / f"{i:05d}.npy", "wb") as f:
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (size,)}
                np.lib.format.write_array_header_1_0(f, header)
                left = size
                while left:
                    chunk = stream.take(left)
                    if not chunk.size:
                        raise ValueError(f"fewer than the {total} tokens announced were written to {folder}")
                    f.write(chunk.tobytes())
                    left -= len(chunk)
        if stream.take(1).size:
            raise ValueError(f"more than the {total} tokens announced were written to {folder}")
    return [{"file": f"{i:05d}.npy", "tokens": size} for i, size in enumerate(sizes)]


class _rechunk:
    """Pieces of any size in, chunks of at most the size asked for out (the writer fills fixed shards)."""

    def __init__(self, pieces: Iterable[np.ndarray], dtype: np.dtype):
        self.pieces: Iterator[np.ndarray] = iter(pieces)
        self.dtype = dtype
        self.head = np.empty(0, dtype=dtype)

    def take(self, most: int) -> np.ndarray:
        """Up to `most` tokens; empty once the pieces are used up."""
        while not self.head.size:
            piece = next(self.pieces, None)
            if piece is None:
                return self.head
            self.head = np.asarray(piece, dtype=self.dtype)
        out, self.head = self.head[:most], self.head[most:]
        return out


class TokenShards:
    """A flat token array split over `.npy` shards (a folder of them, or one `.npy` file), memory-mapped."""

    def __init__(self, path: str | Path):
        path = Path(path)
        files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
        if not files or not files[0].exists():
            raise MissingFile(f"no token shards at {path}; build the mixture first (`magic data`)")
        self.path = path
        self.shards = [np.load(f, mmap_mode="r") for f in files]
        bad = [str(f) for f, s in zip(files, self.shards, strict=True) if s.ndim != 1]
        if bad:
            raise BadValue(f"token shards must be flat arrays; {bad} are not (rebuild the mixture)")
        self.ends = np.cumsum([len(s) for s in self.shards])
        self.dtype = self.shards[0].dtype
        self.ndim, self.size = 1, int(self.ends[-1])
        self.shape = (self.size,)

    def __len__(self) -> int:
        return self.size

    def max(self) -> int:
        return max(int(s.max()) for s in self.shards if len(s))

    def __getitem__(self, index: slice) -> np.ndarray:
        """Tokens start:stop (a slice with step 1), copied out of the shards they span."""
        start, stop, step = index.indices(self.size)
        if step != 1:
            raise ValueError("token shards are read in contiguous slices")
        first = int(np.searchsorted(self.ends, start, side="right"))
        parts = []
        while start < stop:
            offset = start - (self.ends[first - 1] if first else 0)
            take = min(stop, self.ends[first]) - start
            parts.append(self.shards[first][offset:offset + take])
            start += take
            first += 1
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)


# --- a pool's tokenized documents ----------------------------------------------------------------------


class StorePiece:
    """One tokenisation task's output in a store: <name>.tokens, then <name>.ends.npy, <name>.rows.npy last
    (a piece without its rows file is unfinished and ignored)."""

    def __init__(self, folder: Path, dtype: np.dtype, rank: int):
        self.folder = Path(folder)
        self.name = f"{uuid.uuid4().hex[:12]}-{rank:05d}"
        self.dtype = dtype
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = open(self.folder / f".{self.name}.tokens", "wb")
        self.rows: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def write(self, rows: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> None:
        self.file.write(tokens.astype(self.dtype, copy=False).tobytes())
        self.rows.append(rows)
        self.lengths.append(lengths)

    def close(self) -> None:
        self.file.close()
        os.replace(self.folder / f".{self.name}.tokens", self.folder / f"{self.name}.tokens")
        ends = np.cumsum(np.concatenate([np.empty(0, np.int64), *self.lengths]))
        for suffix, values in (("ends", ends), ("rows", np.concatenate([np.empty(0, np.int64), *self.rows]))):
            with io.atomic_path(self.folder / f"{self.name}.{suffix}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, values.astype(np.int64))


class TokenStore:
    """The tokenized documents of one pool: per pool row, its length in tokens (-1: not tokenized yet)."""

    def __init__(self, folder: str | Path, n_rows: int, dtype: np.dtype):
        self.folder, self.dtype = Path(folder), np.dtype(dtype)
        self.length = np.full(n_rows, -1, dtype=np.int64)
        self.start = np.zeros(n_rows, dtype=np.int64)
        self.piece = np.zeros(n_rows, dtype=np.int32)
        self.files: list[int] = []  # open descriptors, one per piece
        self.seen: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Take in the pieces finished since the last look (by this process or another)."""
        for rows_file in sorted(self.folder.glob("*.rows.npy")):
            name = rows_file.name.removesuffix(".rows.npy")
            if name in self.seen:
                continue
            self.seen.add(name)
            rows, ends = np.load(rows_file), np.load(self.folder / f"{name}.ends.npy")
            starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
            new = self.length[rows] < 0  # a row two tasks both tokenized holds the same tokens: keep the first
            self.length[rows[new]] = (ends - starts)[new]
            self.start[rows[new]] = starts[new]
            self.piece[rows[new]] = len(self.files)
            self.files.append(os.open(self.folder / f"{name}.tokens", os.O_RDONLY))

    def missing(self, rows: np.ndarray) -> np.ndarray:
        """The distinct rows among `rows` that are not tokenized yet, sorted."""
        return np.unique(rows[self.length[rows] < 0])

    def read(self, row: int, count: int | None = None) -> np.ndarray:
        """A document's tokens (its first `count` of them when given)."""
        count = int(self.length[row]) if count is None else count
        size = self.dtype.itemsize
        data = os.pread(self.files[self.piece[row]], count * size, int(self.start[row]) * size)
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        for fd in self.files:
            os.close(fd)
        self.files = []
