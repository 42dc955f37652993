"""The scores table in, mixture vectors out: validation, orders, and the seed-mean per mixture.

The study runner writes one row per (mixture, scale, stage, seed, benchmark). Every protocol of the paper
correlates vectors of one value per mixture, so this module turns the scores table into those vectors:
long (`mixture_means`: one row per mixture) or wide (`mixture_matrix`: one row per scale, stage, category
and benchmark, one column per mixture). With several seeds a mixture's value is its seed-mean.

Orders come from the data, never from the order of rows where that would change a number: scales by
`n_params` (small first) or by an explicit `scales=[small, ..., large]` (a table of several scales with
neither is an error: sorting a CSV once flipped the sign of every scale difference), categories by
`categories` (default CATEGORIES, the benchmark registry's), benchmarks by category and then appearance,
mixtures by name. Category names must be the registry's, exactly (`NLI` is not `nli`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from ..benchmarks import CATEGORY_ORDER, benchmark_order
from ..errors import BadType, BadValue
from ..steps import STAGES

CATEGORIES = CATEGORY_ORDER  # the benchmark registry's: commonsense, science, nli, semantic
METRICS = ("accuracy", "confidence", "gold_prob")
KEYS = ["scale", "stage", "category", "benchmark"]
MIXTURE_COLUMNS = ["web_source", "proportions", "code_share"]
# Seed-means are rounded so that scores equal as fractions (k/n items) compare equal after averaging;
# otherwise float noise in the last bit turns ties into spurious orderings.
ROUND_DECIMALS = 12


def as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    """Accept one name or several."""
    return (value,) if isinstance(value, str) else tuple(value)


def check_columns(scores: pd.DataFrame, columns: Sequence[str], purpose: str) -> None:
    """Raise a clear error when the scores table lacks columns that `purpose` needs."""
    if not isinstance(scores, pd.DataFrame):
        raise BadType(f"{purpose} needs a pandas DataFrame of scores, got {type(scores).__name__}")
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise BadValue(
            f"{purpose}: the scores table lacks column(s) {missing}; it needs {list(columns)} "
            "(one row per mixture, scale, stage, seed and benchmark, as `magic` writes to scores.parquet)"
        )


def check_metric(scores: pd.DataFrame, metric: str) -> None:
    """A metric must be a numeric column without missing values."""
    if metric not in scores.columns:
        raise BadValue(
            f"metric {metric!r} is not a column of the scores table; use one of {list(METRICS)} "
            f"or another numeric column ({', '.join(map(str, scores.columns))})"
        )
    if not pd.api.types.is_numeric_dtype(scores[metric]):
        raise BadValue(
            f"metric {metric!r} is not numeric (dtype {scores[metric].dtype}); pick a numeric column"
        )
    if scores[metric].isna().any():
        bad = scores.loc[scores[metric].isna(), KEYS + ["mixture"]].head(3).to_dict("records")
        raise BadValue(
            f"metric {metric!r} has missing values, e.g. {bad}; drop or rescore those rows first"
        )


def scale_order(
    scores: pd.DataFrame, scales: Sequence[str] | None = None, *, required: bool = True
) -> list[str]:
    """Scales small to large: `scales` when given (it must name every scale of the table), else by n_params.

    Never from the order of rows. A table of several scales with neither raises an error naming the fix;
    `required=False` (for sorting output rows only, where no number depends on it) falls back to the
    scale names sorted alphabetically.
    """
    present = list(pd.unique(scores["scale"]))
    if scales is not None:
        scales = list(as_tuple(scales))
        missing, unknown = sorted(set(present) - set(scales)), sorted(set(scales) - set(present))
        if missing or len(set(scales)) != len(scales):
            raise BadValue(
                f"scales={scales} must name each scale of the table once, small to large; "
                f"the table has {present}" + (f" ({missing} missing)" if missing else "")
            )
        return [s for s in scales if s not in unknown]
    if "n_params" in scores.columns:
        sizes = scores.groupby("scale", sort=False)["n_params"].min()
        return list(sizes.sort_values(kind="stable").index)
    if len(present) > 1 and required:
        raise BadValue(
            f"the scores table has scales {present} but no n_params column to order them; add n_params "
            "or pass scales=[smallest, ..., largest] (row order is never used)"
        )
    return sorted(present)


def with_scale_sizes(table: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """`table` with an n_params column after scale when `scores` has one, so that tables derived from it
    (`predictors.sign_flips`) order scales by size too."""
    if "n_params" not in scores.columns or "scale" not in table.columns or table.empty:
        return table
    sizes = scores.groupby("scale", sort=False)["n_params"].min()
    out = table.copy()
    out.insert(out.columns.get_loc("scale") + 1, "n_params", out["scale"].map(sizes))
    return out


def check_categories(scores: pd.DataFrame, categories: Sequence[str] = CATEGORIES) -> None:
    """Category names, in the table and in `categories`, must be the benchmark registry's, exactly."""
    given = list(pd.unique(scores["category"])) if "category" in scores.columns else []
    unknown = [c for c in dict.fromkeys([*given, *as_tuple(categories)]) if c not in CATEGORIES]
    if unknown:
        raise BadValue(
            f"unknown category(ies) {unknown}; allowed (case-sensitive): {list(CATEGORIES)}. "
            "Fix the category column or the categories= argument"
        )


def category_order(scores: pd.DataFrame, categories: Sequence[str] = CATEGORIES) -> list[str]:
    """The categories present, in the order of `categories` (validated against the registry)."""
    check_categories(scores, categories)
    present = list(pd.unique(scores["category"]))
    return [c for c in categories if c in present] + [c for c in present if c not in categories]


def _sort_keys(frame: pd.DataFrame, scores: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    orders = {
        "scale": scale_order(scores, required=False),
        "stage": list(STAGES) + sorted(set(scores["stage"]) - set(STAGES)),
        "category": category_order(scores, categories),
        "benchmark": benchmark_order(scores, categories),
    }
    by = [c for c in KEYS if c in frame.columns] + (["mixture"] if "mixture" in frame.columns else [])

    def position(column: pd.Series) -> pd.Series:
        order = orders.get(column.name)
        return column.map({v: i for i, v in enumerate(order)}) if order else column

    return frame.sort_values(by, key=position, kind="stable").reset_index(drop=True)


def sort_like(
    frame: pd.DataFrame, scores: pd.DataFrame, categories: Sequence[str] = CATEGORIES
) -> pd.DataFrame:
    """Sort a result table by scale, stage, category, benchmark (whichever it has) in the study's orders."""
    return _sort_keys(frame, scores, categories)


def mixture_means(scores: pd.DataFrame, metric: str, categories: Sequence[str] = CATEGORIES) -> pd.DataFrame:
    """One row per (scale, stage, category, benchmark, mixture): the seed-mean of `metric` as `value`.

    Carries the mixture's web_source, proportions and code_share when the table has them, and n_seeds.
    """
    check_columns(scores, KEYS + ["mixture"], "mixture_means")
    check_categories(scores, categories)
    check_metric(scores, metric)
    keys = KEYS + ["mixture"] + [c for c in MIXTURE_COLUMNS if c in scores.columns]
    grouped = scores.groupby(keys, sort=False, dropna=False)[metric]
    means = grouped.agg(value="mean", n_seeds="size").reset_index()
    means["value"] = means["value"].round(ROUND_DECIMALS)
    return _sort_keys(means, scores, categories)


def mixture_matrix(scores: pd.DataFrame, metric: str, categories: Sequence[str] = CATEGORIES) -> pd.DataFrame:
    """One row per (scale, stage, category, benchmark), one column per mixture: the seed-mean of `metric`.

    Every row must have every mixture: a protocol that correlated vectors of different mixtures would
    silently compare different things, so a hole is an error that names it.
    """
    means = mixture_means(scores, metric, categories)
    wide = means.set_index(KEYS + ["mixture"])["value"].unstack("mixture")
    wide = wide.reindex(pd.MultiIndex.from_frame(means[KEYS].drop_duplicates()))
    wide = wide[sorted(wide.columns)]
    holes = wide.isna().stack()
    holes = holes[holes]
    if len(holes):
        examples = [dict(zip(KEYS + ["mixture"], key, strict=True)) for key in holes.index[:3]]
        raise BadValue(
            f"the scores table has no {metric!r} for {len(holes)} (scale, stage, benchmark, mixture) "
            "cell(s), "
            f"e.g. {examples}; every benchmark needs all {wide.shape[1]} mixtures at each scale and stage. "
            "Finish those runs, or filter the table to complete cells before analysing it"
        )
    wide.columns.name = "mixture"
    return wide


def mixture_attributes(scores: pd.DataFrame) -> pd.DataFrame:
    """web_source, proportions and code_share per mixture (index: mixture, sorted by name)."""
    check_columns(scores, ["mixture"] + MIXTURE_COLUMNS, "mixture_attributes")
    attributes = scores[["mixture"] + MIXTURE_COLUMNS].drop_duplicates().set_index("mixture").sort_index()
    if attributes.index.duplicated().any():
        clash = attributes.index[attributes.index.duplicated()][0]
        raise BadValue(
            f"mixture {clash!r} has more than one web_source/proportions/code_share; fix the table"
        )
    return attributes


def select(matrix: pd.DataFrame, **levels: str) -> pd.DataFrame:
    """The rows of `matrix` with the given index levels equal to the given values, those levels dropped.

    Boolean selection keeps the study's row order (the index is deliberately not lexsorted).
    """
    mask = np.ones(len(matrix), dtype=bool)
    for level, value in levels.items():
        mask &= matrix.index.get_level_values(level) == value
    return matrix[mask].droplevel(list(levels))


def stage_pairs(matrix: pd.DataFrame) -> Iterator[tuple[str, str, str, np.ndarray, np.ndarray]]:
    """(scale, category, benchmark, PT vector, SFT vector) for every benchmark scored at both stages."""
    stages = set(matrix.index.get_level_values("stage"))
    if not {"PT", "SFT"} <= stages:
        raise BadValue(
            f"cross-stage protocols need both PT and SFT rows; the table has stages {sorted(stages)}. "
            "Score the SFT checkpoints (or the PT ones) first"
        )
    pt, sft = select(matrix, stage="PT"), select(matrix, stage="SFT")
    sft = sft.reindex(pt.index)
    for key, before, after in zip(pt.index, pt.to_numpy(float), sft.to_numpy(float), strict=True):
        if not np.isnan(after).any():  # benchmarks scored at PT only are skipped
            yield (*key, before, after)
