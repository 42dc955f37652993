"""How far two results folders of the same study differ: the tolerance between two kinds of machine or precision.

A study is bit-reproducible on one kind of machine in one precision. Across kinds (another CPU, a GPU, bf16
instead of fp32) the numbers move by rounding, and this module measures how far: `tolerance_table` compares
every run's per-benchmark scores and the headline cross-stage correlations (RQ1's mean r per scale, metric
and category) of two finished results folders, and reports the largest and the typical difference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import MissingFile

RUN_KEYS = ["mixture", "scale", "stage", "seed", "benchmark"]
SCORE_METRICS = ("accuracy", "confidence", "gold_prob")
HEADLINE_METRICS = ("accuracy", "confidence")
COLUMNS = ["quantity", "compared", "max_abs_diff", "mean_abs_diff", "where_max", "value_a", "value_b"]


def read_scores(results: str | Path) -> pd.DataFrame:
    """The assembled scores table of a finished study (tables/scores.parquet)."""
    path = Path(results) / "tables" / "scores.parquet"
    if not path.exists():
        raise MissingFile(f"{path} does not exist; run `magic study` into {results} first (it assembles the tables)")
    return pd.read_parquet(path)


def tolerance_table(a: str | Path | pd.DataFrame, b: str | Path | pd.DataFrame) -> pd.DataFrame:
    """max and mean |a - b| of per-(run, benchmark) accuracy, confidence and gold probability, and of the
    headline correlations (mean cross-stage Pearson r per scale, metric and category, as RQ1 reports them).
    `a`, `b`: results folders or their scores tables.

    Only runs and benchmarks present in both are compared (`compared` counts them). Columns: quantity,
    compared, max_abs_diff, mean_abs_diff, where_max (the run or cell of the largest difference), value_a,
    value_b (the two values there).
    """
    first, second = (frame if isinstance(frame, pd.DataFrame) else read_scores(frame) for frame in (a, b))
    joined = first.merge(second, on=RUN_KEYS, suffixes=("_a", "_b"))
    if joined.empty:
        raise MissingFile("the two scores tables share no (mixture, scale, stage, seed, benchmark); compare two "
                          "results folders of the same study")
    rows = [_row(f"{metric} (per run and benchmark)", joined, metric, RUN_KEYS) for metric in SCORE_METRICS
            if f"{metric}_a" in joined]
    rows.append(_row("mean cross-stage r (per scale, metric, category)", _headline(first, second), "mean_r",
                     ["scale", "metric", "category"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def _headline(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    from .analysis import category_transfer

    keys = ["scale", "metric", "category"]
    # the point estimates only: intervals and p-values are not what differs between machines
    means = [category_transfer(frame, HEADLINE_METRICS, permutation_p=False, n_boot=1)[keys + ["mean_r"]]
             for frame in (first, second)]
    return means[0].merge(means[1], on=keys, suffixes=("_a", "_b"))


def _row(quantity: str, joined: pd.DataFrame, column: str, keys: list[str]) -> dict:
    diff = (joined[f"{column}_a"] - joined[f"{column}_b"]).abs()
    worst = joined.loc[diff.idxmax()] if diff.notna().any() else None
    return {"quantity": quantity, "compared": int(diff.notna().sum()), "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "where_max": " ".join(str(worst[k]) for k in keys) if worst is not None else "",
            "value_a": float(worst[f"{column}_a"]) if worst is not None else float("nan"),
            "value_b": float(worst[f"{column}_b"]) if worst is not None else float("nan")}
