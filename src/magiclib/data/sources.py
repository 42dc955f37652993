"""Where each pretraining pool comes from: the local mirror's stand-in, or the paper's real hub dataset.

Every pool is a `PoolSource`: the hub coordinates of the dataset the paper used for that slot, plus the
path of the offline stand-in inside the data mirror (`pretrain/<pool>`). With a mirror all three web
sources are made from the one raw `web` pool by this package's own filters; on the hub each web source
is its own, already filtered dataset (RefinedWeb, FineWeb-Edu, DCLM), read as a stream.

`sample_reader` gives the datatrove block that streams a fixed-seed sample of a pool from either place.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import paths
from ..errors import BadValue
from ..hub import HubSource
from .blocks import quiet
from .stages import HubStream, MirrorSample


@dataclass(frozen=True)
class PoolSource(HubSource):
    """A `HubSource` for pretraining text: adds the hub's `data_dir` (StarCoder data is split by folder)
    and whether the text is code (which changes the token estimate)."""

    data_dir: str | None = None
    code: bool = False

    def hub_call(self, streaming: bool = False) -> dict:
        kwargs = super().hub_call(streaming)
        if self.data_dir:
            kwargs["data_dir"] = self.data_dir
        return kwargs


def _redpajama(subset: str, mirror_pool: str) -> PoolSource:
    # RedPajama-Data-1T is a script dataset: recent `datasets` releases need a parquet conversion of it.
    return PoolSource("togethercomputer/RedPajama-Data-1T", subset, "train", f"pretrain/{mirror_pool}", "text")


# One source per pool of `config.POOLS`. The mirror's `technical` pool stands in for ArXiv (+StackExchange)
# and `reference` (a dictionary) has no counterpart, so on the hub they take RedPajama's ArXiv and
# StackExchange: the four curated pools are then exactly the paper's four RedPajama subsets.
POOL_SOURCES: dict[str, PoolSource] = {
    "web": PoolSource("tiiuae/falcon-refinedweb", None, "train", "pretrain/web", "content"),
    "code_python": PoolSource("bigcode/starcoderdata", None, "train", "pretrain/code_python", "content",
                              data_dir="python", code=True),
    # The Stack v2 rows carry Software Heritage blob ids; fetch the file contents as its dataset card says.
    "code_go": PoolSource("bigcode/the-stack-v2-dedup", "Go", "train", "pretrain/code_go", "content", code=True),
    "wikipedia": _redpajama("wikipedia", "wikipedia"),
    "technical": _redpajama("arxiv", "technical"),
    "reference": _redpajama("stackexchange", "reference"),
    "books": _redpajama("book", "books"),
}

# On the hub each web filter is a dataset of its own (the paper's V1, V2, V3).
WEB_HUB_SOURCES: dict[str, PoolSource] = {
    "heuristic": POOL_SOURCES["web"],
    "edu": PoolSource("HuggingFaceFW/fineweb-edu", None, "train", "pretrain/web", "text"),
    "quality": PoolSource("mlfoundations/dclm-baseline-1.0", None, "train", "pretrain/web", "text"),
}

# The instruction mix whose turns are the quality classifier's positives (DCLM used OpenHermes the same way).
SFT_SOURCE = HubSource("allenai/tulu-v2-sft-mixture", None, "train", "sft/tulu-mini/train.jsonl")


def pool_source(name: str) -> PoolSource:
    if name not in POOL_SOURCES:
        raise BadValue(f"unknown pool {name!r}; known pools: {sorted(POOL_SOURCES)} "
                       "(add a PoolSource to magiclib.data.sources.POOL_SOURCES for a new one)")
    return POOL_SOURCES[name]


def location(setting: str) -> str:
    """'mirror' or 'hub' for data.source = auto | mirror | hub."""
    if setting == "hub":
        return "hub"
    if setting == "mirror":
        paths.require_mirror()
        return "mirror"
    return "mirror" if paths.find_mirror() is not None else "hub"


def sample_reader(source: PoolSource, where: str, n: int | None, seed: int, pools: list[str],
                  tally_dir: str | Path) -> MirrorSample | HubStream:
    """The block streaming a fixed-seed sample of `n` documents (all when None) of a pool, as Documents with
    the row's `source` in their metadata; its tally is the report's `sample` row for `pools`."""
    if where == "mirror":
        mirror = paths.require_mirror()
        source.mirror_files(mirror)  # raises, naming the fix, when the mirror lacks the pool
        return MirrorSample(mirror / source.mirror_path, n, seed, pools, source.code, tally_dir)
    return HubStream(source, n, seed, pools, source.code, tally_dir)


def read_docs(source: PoolSource, where: str, n: int | None, seed: int) -> tuple[pd.DataFrame, int | None]:
    """A small sample as a DataFrame (id, text, source), and the number of documents the pool holds (None
    when streaming from the hub, where it is not known). For samples that fit in memory (classifier
    positives, tests); the pools step streams `sample_reader`'s documents instead."""
    with tempfile.TemporaryDirectory(prefix="read-docs-") as tallies:
        reader = sample_reader(source, where, n, seed, ["sample"], tallies)
        with quiet():
            rows = [{"id": d.id, "text": d.text, "source": d.metadata["source"]} for d in reader.run()]
    available = reader.available() if isinstance(reader, MirrorSample) else None
    return pd.DataFrame(rows, columns=["id", "text", "source"]), available
