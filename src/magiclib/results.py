"""Reading a study's results folder: the tables the book's chapters chart.

`magic study` writes `<results>/config.yaml` (the resolved config) and rebuilds `<results>/tables/*.parquet`
from the finished run folders (see `grid.assemble_tables`). Chapters read only through this module, so a
chapter never needs to know the folder layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import steps
from .config import StudyConfig, load_config
from .errors import BadValue, MissingFile

TABLES = ("runs", "scores", "items", "losses")


def study_config(results: str | Path) -> StudyConfig:
    """The config the study in `results` was run with."""
    path = Path(results) / "config.yaml"
    if not path.exists():
        raise MissingFile(f"{path} not found: run `magic study --results {results}` first")
    return load_config(str(path))


def table(results: str | Path, name: str) -> pd.DataFrame:
    """One assembled table: runs, scores, items (per item and choice) or losses (every loss curve)."""
    if name not in TABLES:
        raise BadValue(f"unknown table {name!r}; choose one of {TABLES}")
    path = Path(results) / "tables" / f"{name}.parquet"
    if not path.exists():
        raise MissingFile(f"{path} not found: run `magic study --results {results}` first")
    return pd.read_parquet(path)


def data_report(results: str | Path, name: str) -> pd.DataFrame:
    """A data-pipeline report: filters, examples, decontam (from the pools step) or mixtures (per pool)."""
    results = Path(results)
    cfg = study_config(results)
    if name == "mixtures":
        rows = []
        for seed in cfg.seeds:
            for mixture in cfg.mixture_names:
                stats = json.loads((steps.mixture_dir(cfg, results, mixture, seed) / "stats.json").read_text())
                for pool, values in stats["pools"].items():
                    rows.append({"mixture": mixture, "seed": seed, "pool": pool, **values})
        return pd.DataFrame(rows)
    path = steps.pools_dir(cfg, results) / f"{name}.parquet"
    if not path.exists():
        raise MissingFile(f"{path} not found; known reports: filters, examples, decontam, mixtures")
    return pd.read_parquet(path)
