"""The per-item table in, item cubes out: the schema any scorer can write, and per-item metric arrays.

Every noise-aware protocol (`crossfit`, `components`, `audit`) works on the items the scores were averaged
over, so it can tell mixture differences from item sampling and seed noise. The input is one row per
(run, benchmark, item, choice), from this project's runs (`results.table(..., "items")`) or any scorer:

    run keys   mixture  pretraining mixture name (any string; 9 in the study)
               scale    model scale name
               stage    "PT" or "SFT"
               seed     training seed (integer; several seeds per mixture measure seed noise)
    item keys  benchmark  a benchmark of the registry (`magiclib.benchmarks.BENCHMARKS`)
               item       item id within the benchmark (the same ids for every run)
               choice     0-based choice index within the item
               loglik     log-likelihood of the choice's continuation given the prompt (nats)
               n_chars    characters of the continuation (> 0)
               n_tokens   tokens of the continuation (> 0)
               gold       index of the correct choice (the same on every row of the item)
    optional   web_source, proportions, code_share, n_params (ordering scales), category

Parquet or CSV (`read_items`). A column outside the schema, or a missing one, is a one-line error naming it.
The per-item metrics (ITEM_METRICS) are those of `metrics.item_table`: accuracy (0/1 under the benchmark's
primary rule), confidence, gold probability and the continuous metrics. A cube holds one metric of one
(scale, benchmark) as an array values[stage, mixture, seed, item] over complete, balanced runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..benchmarks import BENCHMARKS
from ..errors import BadValue, MissingFile
from .tables import CATEGORIES, STAGES, category_order, scale_order

RUN_KEYS = ("mixture", "scale", "stage", "seed")
ITEM_KEYS = ("benchmark", "item", "choice", "loglik", "n_chars", "n_tokens", "gold")
OPTIONAL_COLUMNS = ("web_source", "proportions", "code_share", "n_params", "category")
ITEM_METRICS = ("accuracy", "confidence", "gold_prob", *metrics.CONTINUOUS_METRICS)


def check_items(items: pd.DataFrame) -> None:
    """Raise a one-line BadValue naming missing or unknown columns, unknown benchmarks or stages."""
    missing = [c for c in (*RUN_KEYS, *ITEM_KEYS) if c not in items.columns]
    unknown = [c for c in items.columns if c not in (*RUN_KEYS, *ITEM_KEYS, *OPTIONAL_COLUMNS)]
    if missing or unknown:
        problems = "; ".join(([f"lacks column(s) {missing}"] if missing else [])
                             + ([f"has unknown column(s) {unknown}"] if unknown else []))
        raise BadValue(
            f"the items table {problems}: the schema is run keys {list(RUN_KEYS)}, item keys {list(ITEM_KEYS)}, "
            f"optional {list(OPTIONAL_COLUMNS)} (see magiclib.analysis.items)"
        )
    benchmarks = sorted(set(items["benchmark"]) - set(BENCHMARKS))
    if benchmarks:
        raise BadValue(f"unknown benchmark(s) {benchmarks} in the items table; known: {sorted(BENCHMARKS)}")
    stages = sorted(set(items["stage"]) - set(STAGES))
    if stages:
        raise BadValue(f"unknown stage(s) {stages} in the items table; stage must be one of {list(STAGES)}")
    for column in ("n_chars", "n_tokens"):
        if not (pd.to_numeric(items[column], errors="coerce") > 0).all():
            raise BadValue(f"column {column!r} must be a positive count on every row; fix or drop those rows")


def read_items(path: str | Path) -> pd.DataFrame:
    """An items table from a .parquet or .csv file, checked against the schema."""
    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path} not found; pass a .parquet or .csv items table (schema: magiclib.analysis.items)")
    if path.suffix == ".parquet":
        items = pd.read_parquet(path)
    elif path.suffix == ".csv":
        items = pd.read_csv(path, dtype={"item": str, "mixture": str, "scale": str, "stage": str})
    else:
        raise BadValue(f"{path}: unknown format {path.suffix!r}; pass a .parquet or .csv file")
    check_items(items)
    return items


def schema_columns(items: pd.DataFrame) -> pd.DataFrame:
    """The columns of the schema only: a study's own table may carry more (the scorer's diagnostics)."""
    return items[[c for c in items.columns if c in (*RUN_KEYS, *ITEM_KEYS, *OPTIONAL_COLUMNS)]]


def per_item(items: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, benchmark, item) with every metric of ITEM_METRICS (accuracy as 0/1)."""
    check_items(items)
    table = metrics.item_table(items)
    table["accuracy"] = table["correct"].astype(float)
    return table


@dataclass(frozen=True)
class Cube:
    """One metric of one (scale, benchmark): values[stage (PT, SFT), mixture, seed, item]."""

    scale: str
    category: str
    benchmark: str
    metric: str
    mixtures: tuple[str, ...]
    seeds: tuple[int, ...]
    items: tuple[str, ...]
    values: np.ndarray


def cubes(
    table: pd.DataFrame, metric_names: Sequence[str] = ITEM_METRICS, categories: Sequence[str] = CATEGORIES
) -> Iterator[Cube]:
    """Cubes for every (metric, scale, benchmark) of a `per_item` table, in the study's orders.

    Every (stage, mixture, seed) of a scale must have the same items: a hole is an error that names it.
    """
    scales = scale_order(table, required=False)  # sorting only: no number depends on the order
    table = table.assign(category=table["benchmark"].map(lambda b: BENCHMARKS[b].category))
    rank = {c: i for i, c in enumerate(category_order(table, categories))}
    groups = sorted(table.groupby(["scale", "benchmark"], sort=False).groups,
                    key=lambda key: (scales.index(key[0]), rank[BENCHMARKS[key[1]].category]))
    by_group = table.groupby(["scale", "benchmark"], sort=False)
    for metric in metric_names:
        for scale, benchmark in groups:
            group = by_group.get_group((scale, benchmark))
            wide = group.pivot_table(index=["stage", "mixture", "seed"], columns="item", values=metric,
                                     aggfunc="first", dropna=False)
            mixtures = tuple(sorted(group["mixture"].unique()))
            seeds = tuple(sorted(group["seed"].unique()))
            full = pd.MultiIndex.from_product([list(STAGES), mixtures, seeds], names=wide.index.names)
            wide = wide.reindex(full)
            holes = wide.isna().any(axis=1)
            if holes.any():
                example = dict(zip(full.names, holes[holes].index[0], strict=True))
                raise BadValue(
                    f"{scale}/{benchmark}: {int(holes.sum())} (stage, mixture, seed) run(s) lack some items, "
                    f"e.g. {example}; every run of a scale needs the same items at both stages and every "
                    "mixture the same seeds. Finish those runs or filter the table first"
                )
            values = wide.to_numpy(float).reshape(len(STAGES), len(mixtures), len(seeds), wide.shape[1])
            yield Cube(scale, BENCHMARKS[benchmark].category, benchmark, metric, mixtures, seeds,
                       tuple(map(str, wide.columns)), values)
