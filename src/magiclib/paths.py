"""Where things are: the data mirror (or the hub), the repository, and the results root.

The data mirror is found without being told: $MAGIC_DATA first, then `../shared/data` beside the
repository (or beside the current directory). Without a mirror the loaders go to the Hugging Face hub
through the same `datasets` code; `require_mirror` says how to fix a missing one when the hub is off.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingFile

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "MAGIC_DATA"
RESULTS_ENV = "MAGIC_RESULTS"


def find_mirror() -> Path | None:
    """The local data mirror, or None when there is none (then the hub is used)."""
    if os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV]).expanduser()
        if not path.is_dir():
            raise MissingFile(
                f"${DATA_ENV} points at {path}, which is not a folder; unset it or point it at a data mirror "
                "(a folder holding benchmarks/, sft/ and pretrain/)"
            )
        return path
    for base in (REPO_ROOT, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def require_mirror() -> Path:
    """The mirror, or a clear error when there is none and the hub cannot be reached."""
    mirror = find_mirror()
    if mirror is None:
        raise MissingFile(
            "no local data mirror found and the hub is offline: set $MAGIC_DATA to a mirror folder "
            "(benchmarks/, sft/, pretrain/), put one at ../shared/data beside the repository, "
            "or unset HF_HUB_OFFLINE/HF_DATASETS_OFFLINE to load from the Hugging Face hub"
        )
    return mirror


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"


def use_offline_hub_if_mirrored() -> None:
    """With a mirror present, never let transformers/datasets wait on the network."""
    if find_mirror() is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def results_root(preset: str | None = None) -> Path:
    """The results folder: $MAGIC_RESULTS, else results/ in the repository; one subfolder per preset."""
    root = Path(os.environ.get(RESULTS_ENV, REPO_ROOT / "results")).expanduser()
    return root / preset if preset else root
