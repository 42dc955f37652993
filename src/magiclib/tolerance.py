"""How far two results folders of the same study differ: the tolerance between two kinds of machine or precision.

A study is bit-reproducible on one kind of machine in one precision. Across kinds (another CPU, a GPU, bf16
instead of fp32) the numbers move by rounding, and this module measures how far: `tolerance_table` compares
every run's per-benchmark scores and the headline cross-stage correlations (RQ1's mean r per scale, metric
and category) of two finished results folders, and reports the largest and the typical difference.
"""

from __future__ import annotations

import json
import os
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


# --- for the reproducibility chapter -------------------------------------------------------------------

COMPARE_ENV = "MAGIC_COMPARE_RESULTS"


def second_folder(results: str | Path) -> Path | None:
    """The folder to compare a study with: $MAGIC_COMPARE_RESULTS, else the sibling `<results>-bf16`; None
    when neither holds an assembled scores table."""
    results = Path(results)
    for candidate in (os.environ.get(COMPARE_ENV), results.with_name(results.name + "-bf16")):
        if candidate and (Path(candidate) / "tables" / "scores.parquet").exists():
            return Path(candidate)
    return None


def precisions(results: str | Path) -> str:
    """How a study computed: its training and scoring precisions (from its config.yaml) and its CPU."""
    import yaml

    config = yaml.safe_load((Path(results) / "config.yaml").read_text())
    train = sorted({scale[stage].get("precision", "auto") for scale in config["scales"].values()
                    for stage in ("pretrain", "sft")})
    scoring = (config.get("eval") or {}).get("precision", "auto")
    cpus = {record.get("summary", {}).get("cpu") for record in _records(results)} - {None}
    where = f" on {', '.join(sorted(cpus))}" if cpus else ""
    return f"training {'/'.join(train)}, scoring {scoring}{where}"


def _records(results: str | Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(Path(results).glob("runs/*/*/run.json"))]


def chapter_facts(results: str | Path, other: str | Path | None) -> dict:
    """Glue values for the chapter: the two folders, how each computed, and the largest differences; or,
    without a second folder, a sentence saying so (the chapter runs either way)."""
    if other is None:
        return {"tolerance_summary": (
            "No second results folder of this study is available to this build, so the tolerance between "
            "two precisions or kinds of machine is not measured here. Compute one (for example "
            "`magic study --results <results>-bf16 train.precision=bf16 eval.precision=bf16`) and rebuild, or "
            f"set ${COMPARE_ENV} to it.")}
    table = tolerance_table(results, other)
    largest = dict(zip(table["quantity"].str.split(" ").str[0], table["max_abs_diff"], strict=True))
    return {"tolerance_summary": (
        f"This build compares `{Path(results).name}` ({precisions(results)}) with `{Path(other).name}` "
        f"({precisions(other)}). Over {int(table['compared'].iloc[0])} (run, benchmark) cells the largest "
        f"difference of an accuracy is {largest['accuracy']:.3f} and of a mean confidence "
        f"{largest['confidence']:.3f}; the headline correlations (mean cross-stage r per scale, metric and "
        f"category) differ by at most {largest['mean']:.2f}.")}
