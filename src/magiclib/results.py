"""A study's results folder: its config, the tables assembled from its finished runs, and reading them back.

`magic study` writes `<results>/config.yaml` (the resolved config) and, when it ends, rebuilds
`<results>/tables/*.parquet` from the finished run folders (`assemble_tables`), so a crash loses nothing.
`scores_table` rebuilds them first whenever a run finished (or went) since they were written. Chapters
read only through this module, so a chapter never needs to know the folder layout (`steps` names it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from . import io, paths, precision, steps
from .benchmarks import BENCHMARKS, benchmark_order, read_items
from .config import StudyConfig, load_config, to_dict
from .errors import BadValue, MissingFile

CONFIG_FILE = "config.yaml"
TABLES_DIR = "tables"
TABLES = ("runs", "scores", "items", "losses")
# The columns that identify a run; every table starts with them.
RUN_KEYS = ["mixture", "web_source", "proportions", "code_share", "scale", "n_params", "stage", "seed"]


def results_dir(cfg: StudyConfig, override: str | Path | None = None) -> Path:
    """The study's results folder: `override` if given, else $MAGIC_RESULTS or results/, per preset."""
    return Path(override) if override else paths.results_root(cfg.name)


def write_config(cfg: StudyConfig, results: Path) -> Path:
    """The resolved config of this study, the one file every run notebook loads. Its `auto` precisions are
    written as this machine decides them (precision.resolve_study), so every step, wherever it runs, and every
    later reader of the folder sees the precision the study computes in."""
    path = results / CONFIG_FILE
    io.write_text(path, yaml.safe_dump(to_dict(precision.resolve_study(cfg)), sort_keys=False))
    return path


def study_config(results: str | Path) -> StudyConfig:
    """The config the study in `results` was run with."""
    path = Path(results) / CONFIG_FILE
    if not path.exists():
        raise MissingFile(f"{path} not found: run `magic study --results {results}` first")
    return load_config(str(path))


# --- writing the tables ------------------------------------------------------------------------------


def assemble_tables(cfg: StudyConfig, results: Path, write: bool = True) -> dict[str, pd.DataFrame]:
    """Rebuild runs, scores, items and losses tables from the finished run folders (and write them)."""
    runs, scores, items, losses = [], [], [], []
    for st in steps.plan(cfg):
        folder = steps.step_dir(cfg, results, st)
        if not steps.is_done(cfg, results, st):
            continue
        record = io.read_json(folder / io.RUN_RECORD)
        web, props = cfg.mixture(st.mixture)
        keys = {"mixture": st.mixture, "web_source": st.mixture.split("-")[0],
                "proportions": st.mixture.split("-")[1], "code_share": props.code, "scale": st.scale,
                "n_params": steps.scale_params(cfg, st.scale),
                "stage": st.stage or ("PT" if st.kind == "pretrain" else "SFT"), "seed": st.seed}
        runs.append({"kind": st.kind, **keys, "folder": str(folder.relative_to(results)),
                     "seconds": record.get("seconds"), "git_commit": record.get("git_commit"),
                     **{f"summary_{k}": v for k, v in (record.get("summary") or {}).items()
                        if isinstance(v, int | float | str)}})
        if st.kind == "evaluate":
            scores.append(pd.read_parquet(folder / "scores.parquet").assign(**keys))
            items.append(pd.read_parquet(folder / "items.parquet").assign(**keys))
        else:
            losses.append(pd.read_parquet(folder / "loss.parquet").assign(**keys))
    tables = {"runs": pd.DataFrame(runs),
              "losses": _front(pd.concat(losses, ignore_index=True)) if losses else pd.DataFrame(),
              "scores": _front(pd.concat(scores, ignore_index=True)) if scores else pd.DataFrame(),
              "items": _front(pd.concat(items, ignore_index=True)) if items else pd.DataFrame()}
    if write:
        io.remove_temporaries(results / TABLES_DIR)  # left by a run killed while writing them
        for name, frame in tables.items():
            io.write_parquet(results / TABLES_DIR / f"{name}.parquet", frame)
    return tables


def _front(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[RUN_KEYS + [c for c in frame.columns if c not in RUN_KEYS]]


def tables_current(cfg: StudyConfig, results: Path) -> bool:
    """Whether the written tables hold exactly the finished runs of `cfg`, none finished after them."""
    files = [results / TABLES_DIR / f"{name}.parquet" for name in TABLES]
    if not all(f.exists() for f in files):
        return False
    finished = [steps.step_dir(cfg, results, st) for st in steps.plan(cfg) if steps.is_done(cfg, results, st)]
    built = pd.read_parquet(results / TABLES_DIR / "runs.parquet")
    if set(built.get("folder", [])) != {str(f.relative_to(results)) for f in finished}:
        return False
    written = min(f.stat().st_mtime_ns for f in files)
    return all((f / io.RUN_RECORD).stat().st_mtime_ns <= written for f in finished)


def scores_table(cfg: StudyConfig, results: Path) -> pd.DataFrame:
    """The scores of every finished run of `cfg`; the tables are rebuilt first when they are out of date.

    The written tables belong to the study's own steps (config.yaml's): for a config that plans other steps they are built
    in memory and left as they are. A folder scored from a manifest of checkpoints trained elsewhere
    (`magic evaluate --manifest`) has no study config: its tables are assembled from its manifest.
    """
    from . import evaluate

    if (Path(results) / evaluate.MANIFEST_FILE).exists():
        return evaluate.assemble_manifest_tables(results)["scores"]
    own = not (results / CONFIG_FILE).exists() or _run_folders(cfg, results) == _run_folders(
        study_config(results), results)
    if own and tables_current(cfg, results):
        return pd.read_parquet(results / TABLES_DIR / "scores.parquet")
    return assemble_tables(cfg, results, write=own)["scores"]


def _run_folders(cfg: StudyConfig, results: Path) -> list[Path]:
    return [steps.step_dir(cfg, results, st) for st in steps.plan(cfg)]


# --- reading -----------------------------------------------------------------------------------------


def table(results: str | Path, name: str) -> pd.DataFrame:
    """One assembled table: runs, scores, items (per item and choice) or losses (every loss curve)."""
    if name not in TABLES:
        raise BadValue(f"unknown table {name!r}; choose one of {TABLES}")
    path = Path(results) / TABLES_DIR / f"{name}.parquet"
    if not path.exists():
        raise MissingFile(f"{path} not found: run `magic study --results {results}` first")
    return pd.read_parquet(path)


def eval_items(results: str | Path) -> pd.DataFrame:
    """What the study scores, per benchmark in category order: its category, the items scored and the number
    of answer choices (e.g. "2" or "2-4"), read from the study's evaluation items (no benchmark file reloaded)."""
    results = Path(results)
    cfg = study_config(results)
    path = steps.eval_items_dir(cfg, results) / steps.EVAL_ITEMS_FILE
    if not path.exists():
        raise MissingFile(f"{path} not found: run `magic data --results {results}` (or `magic study`) first")
    rows = {}
    for item in read_items(path):
        row = rows.setdefault(item.benchmark, {"category": BENCHMARKS[item.benchmark].category,
                                               "benchmark": item.benchmark, "items scored": 0, "sizes": set()})
        row["items scored"] += 1
        row["sizes"].add(len(item.continuations))
    frame = pd.DataFrame([{**{k: v for k, v in row.items() if k != "sizes"},
                           "choices": _span(sorted(row["sizes"]))} for row in rows.values()])
    return frame.set_index("benchmark").loc[benchmark_order(frame)].reset_index()[list(frame.columns)]


def _span(sizes: list[int]) -> str:
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"


def data_report(results: str | Path, name: str) -> pd.DataFrame:
    """A data-pipeline report: filters, examples, decontam (from the pools step) or mixtures (per pool)."""
    results = Path(results)
    cfg = study_config(results)
    if name == "mixtures":
        rows = []
        for seed in cfg.all_seeds:
            for mixture in cfg.mixture_names:
                stats = json.loads((steps.mixture_dir(cfg, results, mixture, seed) / "stats.json").read_text())
                for pool, values in stats["pools"].items():
                    rows.append({"mixture": mixture, "seed": seed, "pool": pool, **values})
        return pd.DataFrame(rows)
    path = steps.pools_dir(cfg, results) / f"{name}.parquet"
    if not path.exists():
        raise MissingFile(f"{path} not found; known reports: filters, examples, decontam, mixtures")
    return pd.read_parquet(path)
