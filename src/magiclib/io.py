"""Crash-safe files: everything is written to a temporary name and renamed, and every run is recorded.

A step that dies half-way leaves either the old file or no file, never a truncated one. A step folder
counts as finished only once its `run.json` exists, written last (see `finish_run` / `is_finished`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DiskFull, UserError
from .paths import REPO_ROOT

RUN_RECORD = "run.json"
RESULTS_FORMAT = 1  # bump when the layout of results folders changes incompatibly


class IncompatibleResults(UserError, RuntimeError):
    """A results folder written by a magiclib whose results format this one cannot read."""


TMP_MARK = ".tmp-"  # temporaries are named .<name>.tmp-<pid>-<random>


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:6]}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path` (file or folder).

    On any error the temporary is removed and `path` keeps its old content; a full disk says so, and where.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = _tmp_name(path)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(err.errno, f"disk full (or over quota) while writing {path}; its old content, if any, is "
                       "kept. Free some space or point --results / $MAGIC_RESULTS at a larger disk, then rerun: "
                       "finished steps are kept") from err
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries a killed writer left under `folder` (only one process may own it); list them."""
    stale = list(Path(folder).rglob(f".*{TMP_MARK}*"))
    for path in sorted(stale, key=lambda p: len(p.parts)):  # a folder before what it holds
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    return stale


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def git_commit() -> str | None:
    """The repository's commit (with '+dirty' for uncommitted changes), or None outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def library_versions() -> dict[str, str]:
    names = ["magiclib", "torch", "transformers", "datasets", "tokenizers", "numpy", "pandas", "scipy", "statsmodels"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def finish_run(folder: str | Path, *, kind: str, config: Any, config_hash: str, seed: int | None,
               started: float, **extra: Any) -> dict:
    """Write the run record last: its presence marks the folder as complete."""
    record = {
        "kind": kind,
        "config_hash": config_hash,
        "config": config,
        "seed": seed,
        "git_commit": git_commit(),
        "versions": library_versions(),
        "host": platform.node(),
        "results_format": RESULTS_FORMAT,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        **extra,
    }
    write_json(Path(folder) / RUN_RECORD, record)
    return record


def is_finished(folder: str | Path, config_hash: str | None = None) -> bool:
    """True when `folder` holds a complete run (of `config_hash`, when given)."""
    record_path = Path(folder) / RUN_RECORD
    if not record_path.exists():
        return False
    try:
        record = read_json(record_path)
    except (json.JSONDecodeError, OSError):
        return False
    if record.get("results_format") != RESULTS_FORMAT:
        raise IncompatibleResults(
            f"{folder} was written by an incompatible magiclib (results format {record.get('results_format')}, "
            f"this one reads {RESULTS_FORMAT}); move that results folder away (or give another --results / "
            "$MAGIC_RESULTS) and rerun, or read it with the magiclib version that wrote it"
        )
    return config_hash is None or record.get("config_hash") == config_hash
