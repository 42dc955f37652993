"""The pools step's datatrove blocks: stream readers of a pool's source and the filters, each keeping a tally.

    MirrorSample        a fixed-seed sample of a mirror pool's jsonl.gz files (datatrove's JsonlReader)
    HubStream           a hub dataset read as a stream (`datasets` streaming), shuffled in a bounded buffer
    PoolReader          a prepared (or intermediate) pool folder, in row order (datatrove's ParquetReader)
    Heuristic, ExactDedup, NearDedup, Decontaminate, ClassifierKeep    the study's filters, one stage each

Every block streams; what it keeps across documents is a fixed size per document (a hash, a signature, a
score), never the text. Each block counts the documents and approximate tokens going in and out, and keeps a
few examples of what it kept and dropped, in a `Tally` it saves as JSON when its input ends (one file per task,
so a pipeline run by datatrove's executor in other processes reports the same way); `Report` gathers them into
the rows of the pools step's report tables.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader

from ..errors import BadValue, UnknownName
from ..hub import HubSource, load_rows
from . import dedup, filters
from .blocks import text_batches
from .decontam import NgramIndex
from .text import approx_tokens

SHUFFLE_BUFFER = 10_000  # documents held by a streaming shuffle on the hub
HUB_BATCH = 100  # rows the hub stream hands over at once
BATCH_DOCS, BATCH_CHARS = 1000, 2**20  # documents one batched filter call takes (decontamination, MinHash)
STAGES = ("sample", "heuristic", "exact_dedup", "near_dedup", "edu", "quality", "decontam")  # in chain order
EXAMPLES_PER_DECISION = 3
SNIPPET_CHARS = 300


def doc_tokens(document: Document, code: bool) -> int:
    """The document's approximate token count, computed once and kept in its metadata."""
    if "tokens" not in document.metadata:
        document.metadata["tokens"] = approx_tokens([document.text], code)
    return document.metadata["tokens"]


@dataclass
class Tally:
    """One stage's counts over the pools it serves, and its examples (a few kept, a few dropped)."""

    stage: str
    pools: list[str]
    code: bool = False
    docs_in: int | None = 0
    docs_out: int = 0
    tokens_in: int | None = 0
    tokens_out: int = 0
    kept: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    removed_by: dict[str, int] = field(default_factory=dict)  # decontamination: documents per benchmark

    @property
    def key(self) -> str:
        return f"{self.stage}--{'+'.join(self.pools)}"

    def count(self, document: Document, reason: str | None) -> None:
        tokens = doc_tokens(document, self.code)
        self.docs_in += 1
        self.tokens_in += tokens
        if reason is None:
            self.docs_out += 1
            self.tokens_out += tokens

    def add(self, document: Document, reason: str | None) -> None:
        """Count a document and keep it as an example by the rules' policy: the first kept documents, and the
        first dropped one of each kind of reason."""
        self.count(document, reason)
        if reason is None:
            if len(self.kept) < EXAMPLES_PER_DECISION:
                self.kept.append(self.example(document, "kept", "passed"))
        elif len(self.dropped) < 2 * EXAMPLES_PER_DECISION:
            kind = reason.split(":")[0]
            if all(e["reason"].split(":")[0] != kind for e in self.dropped):
                self.dropped.append(self.example(document, "dropped", reason))

    def example(self, document: Document, decision: str, reason: str) -> dict:
        return {"filter": self.stage, "pools": ", ".join(self.pools), "decision": decision, "reason": reason,
                "id": document.id, "snippet": document.text[:SNIPPET_CHARS]}

    def save(self, folder: str, rank: int) -> None:
        path = Path(folder) / f"{self.key}.{rank:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))


class Report:
    """The report rows of the tallies the blocks saved under `folder`, gathered in the order asked for."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.rows: list[dict] = []
        self.examples: list[dict] = []
        self.decontam: list[dict] = []

    def collect(self, blocks: list[PipelineStep]) -> None:
        for block in blocks:
            if isinstance(block, Tallied):
                self._add(self._merged(block.tally()))

    def _merged(self, tally: Tally) -> Tally:
        """The tasks' tallies of one block summed; examples in task order, as many as one task keeps."""
        parts = [Tally(**json.loads(p.read_text())) for p in sorted(self.folder.glob(f"{tally.key}.*.json"))]
        if not parts:
            raise BadValue(f"no tally of stage {tally.key!r} under {self.folder}: the pipeline did not run to "
                           "its end (see the error above)")
        out = parts[0]
        for part in parts[1:]:
            for name in ("docs_in", "tokens_in"):
                setattr(out, name, None if getattr(out, name) is None else getattr(out, name) + getattr(part, name))
            out.docs_out += part.docs_out
            out.tokens_out += part.tokens_out
            out.kept = (out.kept + part.kept)[:EXAMPLES_PER_DECISION]
            out.dropped = (out.dropped + part.dropped)[:2 * EXAMPLES_PER_DECISION]
            out.removed_by = {b: n + part.removed_by.get(b, 0) for b, n in out.removed_by.items()}
        return out

    def _add(self, tally: Tally) -> None:
        row = {"stage": tally.stage, "docs_in": tally.docs_in, "docs_out": tally.docs_out,
               "tokens_in": tally.tokens_in, "tokens_out": tally.tokens_out}
        self.rows.extend({**row, "pool": pool} for pool in tally.pools)
        if tally.stage != "sample":
            self.examples.extend(tally.kept + tally.dropped)
        self.decontam.extend({"pool": pool, "benchmark": b, "docs_removed": n}
                             for pool in tally.pools for b, n in tally.removed_by.items())


class Tallied(PipelineStep):
    """A block that keeps a `Tally` and saves it under `tally_dir` when its input ends."""

    def __init__(self, stage: str, pools: list[str], code: bool, tally_dir: str | Path):
        super().__init__()
        self.stage, self.pools, self.code, self.tally_dir = stage, list(pools), code, str(tally_dir)

    def tally(self) -> Tally:
        return Tally(self.stage, self.pools, self.code)


# --- readers -------------------------------------------------------------------------------------------


class MirrorSample(Tallied):
    """`n` documents (all when None) of a mirror pool's *.jsonl.gz files, chosen by a fixed seed among all
    of them and yielded in file order. The files are read twice: once to count the documents, then to pick."""

    name = "mirror sample"
    type = "📖 - READER"

    def __init__(self, folder: str | Path, n: int | None, seed: int, pools: list[str], code: bool,
                 tally_dir: str | Path):
        super().__init__("sample", pools, code, tally_dir)
        self.folder, self.n, self.seed = Path(folder), n, seed

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl*"))

    def available(self) -> int:
        """The number of documents: one per line (what JsonlReader yields when no line is blank)."""
        total = 0
        for file in self.files():
            with gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb") as f:
                last = b"\n"
                while chunk := f.read(2**20):
                    total += chunk.count(b"\n")
                    last = chunk[-1:]
                total += last != b"\n"  # a last line without its newline
        return total

    def chosen(self, total: int) -> np.ndarray:
        """Sorted positions of the sampled documents among all `total` (8 bytes per sampled document)."""
        if self.n is None or self.n >= total:
            return np.arange(total)
        return np.sort(np.random.default_rng(self.seed).choice(total, size=self.n, replace=False))

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        total = self.available()
        wanted = self.chosen(total)[rank::world_size]
        tally = Tally(self.stage, self.pools, self.code, docs_in=total, tokens_in=None)
        reader = JsonlReader(str(self.folder), glob_pattern="*.jsonl*", add_file_path=False, recursive=False)
        next_pick = 0
        for position, document in enumerate(reader.run()):
            if next_pick == len(wanted):
                break
            if position == wanted[next_pick]:
                next_pick += 1
                tally.docs_out += 1
                tally.tokens_out += doc_tokens(document, self.code)
                yield document
        if next_pick != len(wanted):
            raise BadValue(f"{self.folder} holds {total} lines but fewer documents with text; remove the "
                           "blank lines and text-less rows from the mirror's files")
        tally.save(self.tally_dir, rank)


class HubStream(Tallied):
    """A hub dataset as a stream (`load_rows(..., streaming=True)`): `n` documents (all when None) after a
    seeded shuffle in a bounded buffer, split over tasks by `datasets.distributed.split_dataset_by_node`.
    Rows without an id are named by their place in the stream; rows with empty text are skipped."""

    name = "hub stream"
    type = "📖 - READER"

    def __init__(self, source: HubSource, n: int | None, seed: int, pools: list[str], code: bool,
                 tally_dir: str | Path):
        super().__init__("sample", pools, code, tally_dir)
        self.source, self.n, self.seed = source, n, seed

    def stream(self, rank: int, world_size: int):
        stream = load_rows(self.source, where="hub", streaming=True)
        if self.n is not None:  # a sample: shuffled first (a sample of all, no more is needed)
            stream = stream.shuffle(seed=self.seed, buffer_size=SHUFFLE_BUFFER).take(self.n)
        if world_size > 1:
            from datasets.distributed import split_dataset_by_node

            stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
        return stream

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        source = self.source
        tally = Tally(self.stage, self.pools, self.code, docs_in=None, tokens_in=None)
        prefix = f"{source.hub_id}:" if world_size == 1 else f"{source.hub_id}:{rank}-"
        i = 0
        # Batches of rows (columns of lists): `datasets` formats a batch many times faster than as many rows.
        for batch in self.stream(rank, world_size).iter(batch_size=HUB_BATCH):
            if source.text_field not in batch:
                raise UnknownName(f"{source.hub_id} rows have no {source.text_field!r} field (fields: "
                                  f"{sorted(batch)}); fix text_field in magiclib.data.sources")
            texts = batch[source.text_field]
            ids = batch.get("id") or [None] * len(texts)
            for text, doc_id in zip(texts, ids, strict=True):
                i += 1
                if not text:
                    continue
                document = Document(text=text, id=str(doc_id or f"{prefix}{i - 1}"), metadata={"source": source.hub_id})
                tally.docs_out += 1
                tally.tokens_out += doc_tokens(document, self.code)
                yield document
        tally.save(self.tally_dir, rank)


class PoolReader(ParquetReader):
    """The documents of a pool folder in row order (id, text; `source` in the metadata)."""

    name = "pool reader"

    def __init__(self, folder: str | Path):
        super().__init__(str(folder), glob_pattern="*.parquet", batch_size=256, recursive=False)


# --- filters -------------------------------------------------------------------------------------------


class Filter(Tallied):
    """Drops the documents `reasons` gives a reason for; counts every document in its tally."""

    type = "🔻 - FILTER"

    def reasons(self, batch: list[Document]) -> list[str | None]:
        raise NotImplementedError

    def keep_example(self, tally: Tally, document: Document, reason: str | None) -> None:
        tally.add(document, reason)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        tally = self.tally()
        for batch in text_batches(data, BATCH_DOCS, BATCH_CHARS):
            with self.track_time(unit="batch"):
                reasons = self.reasons(batch)
            for document, reason in zip(batch, reasons, strict=True):
                self.keep_example(tally, document, reason)
                if reason is None:
                    yield document
                else:
                    self.stat_update("dropped")
        self.finish(tally)
        tally.save(self.tally_dir, rank)

    def finish(self, tally: Tally) -> None:
        """Complete the tally once every document went through."""


class Heuristic(Filter):
    name = "heuristic rules"

    def __init__(self, pools: list[str], tally_dir: str | Path):
        super().__init__("heuristic", pools, False, tally_dir)

    def reasons(self, batch):
        return [filters.heuristic_reason(d.text) for d in batch]


class ExactDedup(Filter):
    name = "exact dedup"

    def __init__(self, pools: list[str], tally_dir: str | Path):
        super().__init__("exact_dedup", pools, False, tally_dir)
        self.dedup = dedup.ExactDedup()

    def reasons(self, batch):
        return [self.dedup.reason(d.text) for d in batch]


class NearDedup(Filter):
    name = "near dedup"

    def __init__(self, pools: list[str], threshold: float, tally_dir: str | Path):
        super().__init__("near_dedup", pools, False, tally_dir)
        self.dedup = dedup.NearDedup(threshold)

    def reasons(self, batch):
        return self.dedup.reasons([d.id for d in batch], [d.text for d in batch])


class Decontaminate(Filter):
    """Drops documents sharing an n-gram with a benchmark; counts the documents removed per benchmark."""

    name = "decontaminate"

    def __init__(self, index: NgramIndex, pool: str, code: bool, tally_dir: str | Path):
        super().__init__("decontam", [pool], code, tally_dir)
        self.index = index
        self.removed_by = dict.fromkeys(index.benchmarks, 0)

    def reasons(self, batch):
        found = self.index.overlaps([d.text for d in batch])
        for benchmarks in found:
            for b in benchmarks:
                self.removed_by[b] += 1
        return [f"shares a {self.index.n}-gram with {', '.join(b)}" if b else None for b in found]

    def finish(self, tally):
        tally.removed_by = self.removed_by


class ClassifierKeep(Filter):
    """Keeps the documents of a pool read in row order whose place `keep` marks (the top fraction by the
    classifier's `scores`, one per row). Examples: the highest-scoring kept and lowest-scoring dropped."""

    name = "classifier"

    def __init__(self, stage: str, pool: str, scores: np.ndarray, fraction: float, tally_dir: str | Path):
        from .classifier import top_fraction

        super().__init__(stage, [pool], False, tally_dir)
        self.scores, self.fraction = scores, fraction
        self.keep = top_fraction(scores, fraction)
        order = np.argsort(-scores, kind="stable")
        kept = order[self.keep[order]][:EXAMPLES_PER_DECISION]
        dropped = order[::-1][~self.keep[order[::-1]]][:EXAMPLES_PER_DECISION]
        self.example_rank = {int(i): k for k, i in enumerate([*kept, *dropped])}
        self.row = 0  # the next row `reasons` decides on
        self.seen = 0  # the next row `keep_example` counts
        self.examples: dict[int, dict] = {}

    def reasons(self, batch):
        rows = range(self.row, self.row + len(batch))
        self.row += len(batch)
        if self.row > len(self.keep):
            raise BadValue(f"the {self.stage} filter got more documents than it has scores ({len(self.keep)}); "
                           "score the same pool it filters")
        return [None if self.keep[r] else
                f"{self.stage} score: {self.scores[r]:.2f}, not in the top {self.fraction:.0%}" for r in rows]

    def keep_example(self, tally, document, reason):
        tally.count(document, reason)
        if self.seen in self.example_rank:
            decision = "kept" if reason is None else "dropped"
            self.examples[self.example_rank[self.seen]] = tally.example(
                document, decision, reason or f"score: {self.scores[self.seen]:.2f}")
        self.seen += 1

    def finish(self, tally):
        ordered = [self.examples[k] for k in sorted(self.examples)]
        tally.kept = [e for e in ordered if e["decision"] == "kept"]
        tally.dropped = [e for e in ordered if e["decision"] == "dropped"]
