"""One loader for every dataset the study reads: the local mirror or the Hugging Face hub, same code.

A `HubSource` names a dataset twice: where it lives on the hub (id, config, split) and where its mirror
copy lives under the data mirror (a relative path to jsonl or jsonl.gz files). `load_rows` reads the
mirror with `datasets.load_dataset("json", ...)` when a mirror is found, else the hub with
`datasets.load_dataset(id, config, split=...)`, so the two paths differ only in location.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import MissingFile


@dataclass(frozen=True)
class HubSource:
    """A dataset split: its hub coordinates and its path inside the data mirror."""

    hub_id: str
    hub_config: str | None
    split: str
    mirror_path: str | None  # relative to the mirror root; a file or a folder of *.jsonl[.gz]
    text_field: str | None = None  # for pretraining pools: the field holding the document text

    def hub_call(self, streaming: bool = False) -> dict:
        """The keyword arguments of the `datasets.load_dataset` call that reads this split from the hub."""
        kwargs = {"path": self.hub_id, "split": self.split, "streaming": streaming}
        if self.hub_config:
            kwargs["name"] = self.hub_config
        return kwargs

    def mirror_files(self, mirror: Path) -> list[str]:
        if self.mirror_path is None:
            raise MissingFile(f"{self.hub_id} has no copy in the local mirror; load it from the hub")
        path = mirror / self.mirror_path
        files = sorted(str(p) for p in path.glob("*.jsonl*")) if path.is_dir() else [str(path)]
        if not files or not all(Path(f).exists() for f in files):
            raise MissingFile(
                f"mirror file(s) for {self.hub_id} not found at {path}; check the mirror "
                f"(${paths.DATA_ENV}) or unset HF_HUB_OFFLINE to load {self.hub_id} from the hub"
            )
        return files


def load_rows(source: HubSource, *, where: str = "auto", streaming: bool = False):
    """Load a split as a `datasets.Dataset` (or IterableDataset when streaming) from mirror or hub."""
    import datasets

    datasets.disable_progress_bars()
    mirror = paths.find_mirror() if where in ("auto", "mirror") else None
    if mirror is not None and source.mirror_path is not None:
        paths.use_offline_hub_if_mirrored()
        return datasets.load_dataset("json", data_files=source.mirror_files(mirror), split="train",
                                     streaming=streaming)
    if where == "mirror":
        paths.require_mirror()
        raise MissingFile(f"{source.hub_id} has no mirror copy; use data.source=hub")
    if paths.hub_offline():
        paths.require_mirror()  # raises with the fix
    return datasets.load_dataset(**source.hub_call(streaming))
