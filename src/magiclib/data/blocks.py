"""The data step's datatrove pipeline blocks, and one function that runs a pipeline in parallel tasks.

Readers yield datatrove `Document`s; filters drop some; the tokenizer block writes what reaches it to a
`TokenStore`. Every block streams: a task holds one batch of documents at a time, whatever the corpus size.
(The pools step's readers and filters are in `stages`.)

    PoolWriter          documents as pool rows (id, text, source): one parquet file per task, bounded row groups
    PoolRowsReader      chosen rows of a prepared pool (parquet), split over tasks in row order
    TokenizeToStore     batch tokenisation (the study's tokenizer, eos after each document) into a store
    run_pipeline        the blocks over `tasks` tasks: in this process for one, else datatrove's local executor
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.base import BaseReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.tokenization import PipelineStepWithTokenizer
from loguru import logger

from .shards import StorePiece

# One tokenizer call takes up to this many documents or characters, whichever comes first: enough to amortise
# the call, and a bounded size of its output (an Encoding holds several arrays and a string per token).
TOKENIZE_BATCH_DOCS, TOKENIZE_BATCH_CHARS = 1000, 2**20


# A pool's row group holds up to this many documents or characters: what a reader of the pool holds at once.
ROW_GROUP_DOCS, ROW_GROUP_CHARS = 1000, 2**25
POOL_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])


def pool_files(path: str | Path) -> list[Path]:
    """A prepared pool: one parquet file, or a folder of them (rows numbered across files in name order)."""
    path = Path(path)
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def pool_rows(path: str | Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in pool_files(path))


def _pool_row(self, document: Document) -> dict:
    return {"id": document.id, "text": document.text, "source": document.metadata["source"]}


class PoolWriter(ParquetWriter):
    """Pool rows (id, text, source from the document's metadata) into `<folder>/<rank>.parquet`, a row group
    every `ROW_GROUP_DOCS` documents or `ROW_GROUP_CHARS` characters, whichever comes first."""

    name = "pool writer"

    def __init__(self, folder: str | Path):
        super().__init__(str(folder), output_filename="${rank}.parquet", adapter=_pool_row,
                         batch_size=ROW_GROUP_DOCS, max_file_size=-1, schema=POOL_SCHEMA,
                         use_content_defined_chunking=False, write_page_index=False)
        self._chars: dict[str, int] = {}

    def _write(self, document: dict, file_handler, filename: str):
        super()._write(document, file_handler, filename)
        chars = self._chars.get(filename, 0) + len(document["text"]) if self._batches[filename] else 0
        if chars >= ROW_GROUP_CHARS:
            self._write_batch(filename)
            chars = 0
        self._chars[filename] = chars


class PoolRowsReader(BaseReader):
    """The documents at `rows` (sorted pool row numbers) of a prepared pool; task k of n reads every n-th of
    them from the k-th on (pools are ordered by source, and sources differ in document length: contiguous
    slices would give one task most of the tokens). Only row groups holding its rows are read, in order."""

    name = "pool rows"

    def __init__(self, path: str | Path, rows: np.ndarray):
        super().__init__()
        self.path = str(path)
        self.rows = np.asarray(rows, dtype=np.int64)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        wanted = self.rows[rank::world_size]
        first = 0
        for file in pool_files(self.path):
            parquet = pq.ParquetFile(file)
            for group in range(parquet.metadata.num_row_groups):
                size = parquet.metadata.row_group(group).num_rows
                lo, hi = np.searchsorted(wanted, [first, first + size])
                if hi > lo:
                    texts = _row_group_texts(str(file), group).take(wanted[lo:hi] - first).to_pylist()
                    for row, text in zip(wanted[lo:hi].tolist(), texts, strict=True):
                        document = Document(text=text, id=str(row))
                        self.update_doc_stats(document)
                        yield document
                first += size


@functools.lru_cache(maxsize=2)
def _row_group_texts(file: str, group: int) -> pa.ChunkedArray:
    # Successive draws of a mixture, and the mixtures after it, read the same row groups again: keep the
    # last two (a bounded amount: row groups are written at a bounded size).
    return pq.ParquetFile(file).read_row_group(group, columns=["text"]).column("text")


class TokenizeToStore(PipelineStepWithTokenizer):
    """Tokenize documents (ids are pool rows) with eos appended; each task writes one `StorePiece`."""

    name = "tokenize to store"
    type = "🔢 - TOKENIZER"

    def __init__(self, store_dir: str | Path, tokenizer_file: str | Path, eos_token: str, dtype: np.dtype):
        super().__init__(str(tokenizer_file), eos_token)
        self.store_dir = str(store_dir)
        self.dtype = np.dtype(dtype)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        piece = StorePiece(Path(self.store_dir), self.dtype, rank)
        for batch in text_batches(data, TOKENIZE_BATCH_DOCS, TOKENIZE_BATCH_CHARS):
            with self.track_time(unit="batch"):
                # `Encoding.ids` builds a new Python list at every call: take each one once.
                ids = [e.ids for e in self.tokenizer.encode_batch_fast([d.text for d in batch])]
                lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=self.dtype, count=int(lengths.sum()))
                piece.write(np.array([int(d.id) for d in batch], dtype=np.int64), tokens, lengths)
            self.stat_update("tokens", value=int(lengths.sum()))
        piece.close()
        return
        yield  # a generator, like every block: the executor drains it


def text_batches(documents, most_docs: int, most_chars: int):
    """Lists of consecutive documents, each list ending when it holds `most_docs` or `most_chars`."""
    batch, chars = [], 0
    for document in documents:
        batch.append(document)
        chars += len(document.text)
        if len(batch) == most_docs or chars >= most_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@contextlib.contextmanager
def quiet():
    """Datatrove's messages off while blocks run in this process: its readers log every file they open."""
    logger.disable("datatrove")
    try:
        yield
    finally:
        logger.enable("datatrove")


def run_pipeline(blocks: list[PipelineStep], tasks: int, logging_dir: str | Path) -> None:
    """Run `blocks` as `tasks` tasks. One task runs right here, as datatrove's executor would run it,
    without its process pool and logs; more go to a `LocalPipelineExecutor` with one worker per task."""
    if tasks == 1:
        with quiet():
            data = None
            for block in blocks:
                data = block(data, 0, 1)
            if data is not None:
                deque(data, maxlen=0)
        return
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(blocks, tasks=tasks, workers=tasks, logging_dir=str(logging_dir),
                          skip_completed=False).run()
