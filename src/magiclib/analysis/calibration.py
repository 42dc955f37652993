"""RQ4: does confidence track accuracy, and does that alignment survive fine-tuning?

The paper's r_align = corr(accuracy, confidence) per category, stage and scale (science about 0.8 at every
scale and stage, semantic negative), and an "alignment persistence" PT -> SFT per category. The sources
do not say across what the correlation runs, so both readings are computed and labelled by `axis`:

- axis "benchmarks": across the benchmarks of a category, each benchmark's mixture-mean accuracy against
  its mixture-mean confidence (n = benchmarks in the category; permutation p, bootstrap over
  benchmarks). Reads "are the benchmarks the model is surer on the ones it gets right?";
- axis "mixtures": per benchmark across the 9 mixtures, then averaged over the category's benchmarks
  (joint permutation p, bootstrap over mixtures). Reads "does a mixture that raises accuracy also raise
  confidence?". `alignment_by_benchmark` gives the per-benchmark coefficients.

Persistence is defined on the calibration gap (confidence - accuracy), a benchmark's calibration
fingerprint: corr(gap^PT, gap^SFT) along the same two axes. Standard calibration metrics (ECE, Brier)
are summarised per category, stage and scale; the paper reported none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import BadValue
from .stats import correlate, mean_correlation
from .tables import CATEGORIES, as_tuple, check_columns, mixture_matrix, select

AXES = ("benchmarks", "mixtures")
CALIBRATION_MEASURES = ("ece", "ece_15", "brier", "overconfidence")


def _groups(matrix: pd.DataFrame):
    """(scale, stage, category) keys of a mixture matrix, in its order."""
    return list(matrix.index.droplevel("benchmark").unique())


def alignment_by_benchmark(
    scores: pd.DataFrame, method: str = "pearson", categories: Sequence[str] = CATEGORIES, **options
) -> pd.DataFrame:
    """corr(accuracy, confidence) across mixtures for each (scale, stage, benchmark).

    Columns: scale, stage, category, benchmark, n, r, p, ci_low, ci_high, ... (`stats.correlate`).
    """
    accuracy, confidence = (mixture_matrix(scores, m, categories) for m in ("accuracy", "confidence"))
    confidence = confidence.reindex(accuracy.index)
    rows = []
    cells = list(zip(accuracy.index, accuracy.to_numpy(float), confidence.to_numpy(float), strict=True))
    for (scale, stage, category, benchmark), acc, conf in tqdm(cells, desc="alignment", leave=False):
        rows.append(
            {
                "scale": scale,
                "stage": stage,
                "category": category,
                "benchmark": benchmark,
                **correlate(acc, conf, method, **options),
            }
        )
    return pd.DataFrame(rows)


def _both_axes(
    first: pd.DataFrame, second: pd.DataFrame, keys: dict, method: str, options: dict
) -> list[dict]:
    """One row per axis for two (benchmark x mixture) blocks of the same category."""
    across_benchmarks = correlate(
        first.mean(axis=1).to_numpy(), second.mean(axis=1).to_numpy(), method, **options
    )
    across_mixtures = mean_correlation(first.to_numpy(float), second.to_numpy(float), method, **options)
    n_benchmarks = len(first)
    return [
        keys
        | {
            "axis": "benchmarks",
            "method": method,
            "n": across_benchmarks["n"],
            "n_benchmarks": n_benchmarks,
            **{k: across_benchmarks[k] for k in ("r", "p", "ci_low", "ci_high")},
        },
        keys
        | {
            "axis": "mixtures",
            "method": method,
            "n": across_mixtures["n"],
            "n_benchmarks": n_benchmarks,
            "r": across_mixtures["mean_r"],
            **{k: across_mixtures[k] for k in ("p", "ci_low", "ci_high")},
        },
    ]


def alignment(
    scores: pd.DataFrame, method: str = "pearson", categories: Sequence[str] = CATEGORIES, **options
) -> pd.DataFrame:
    """r_align per (scale, stage, category) along both axes (see the module text).

    Columns: scale, stage, category, axis, method, n (points per correlation), n_benchmarks, r, p,
    ci_low, ci_high. `options` go to `stats.correlate` / `stats.mean_correlation`.
    """
    accuracy, confidence = (mixture_matrix(scores, m, categories) for m in ("accuracy", "confidence"))
    rows = []
    for scale, stage, category in _groups(accuracy):
        where = {"scale": scale, "stage": stage, "category": category}
        acc = select(accuracy, **where)
        conf = select(confidence, **where).reindex(acc.index)
        rows += _both_axes(acc, conf, where, method, options)
    return pd.DataFrame(rows)


def alignment_persistence(
    scores: pd.DataFrame, method: str = "pearson", categories: Sequence[str] = CATEGORIES, **options
) -> pd.DataFrame:
    """Does a category's calibration fingerprint survive SFT? corr(gap^PT, gap^SFT), gap = conf - acc.

    The paper (240M / 1B): commonsense 0.73 / 0.54, science 0.62 / 0.31, NLI -0.41 / -0.40, semantic
    0.50 / 0.27, definition unstated. Columns: scale, category, axis, method, n, n_benchmarks, r, p,
    ci_low, ci_high.
    """
    gap = mixture_matrix(scores, "confidence", categories) - mixture_matrix(scores, "accuracy", categories)
    rows = []
    for scale, stage, category in _groups(gap):
        if stage != "PT":
            continue
        pt = select(gap, scale=scale, stage="PT", category=category)
        sft = select(gap, scale=scale, stage="SFT", category=category).reindex(pt.index).dropna()
        if len(sft):
            rows += _both_axes(
                pt.loc[sft.index], sft, {"scale": scale, "category": category}, method, options
            )
    return pd.DataFrame(rows)


def calibration_summary(
    scores: pd.DataFrame,
    measures: str | Sequence[str] = CALIBRATION_MEASURES,
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """ECE, Brier and overconfidence (confidence - accuracy) per (scale, stage, category).

    Each benchmark's value is its mean over mixtures (and seeds); the summary is over the category's
    benchmarks. Columns: scale, stage, category, measure, mean, sd, se, min, max, n_benchmarks.
    """
    measures = as_tuple(measures)
    unknown = [m for m in measures if m != "overconfidence" and m not in scores.columns]
    if unknown:
        raise BadValue(
            f"calibration measure(s) {unknown} are not columns of the scores table; "
            f"use any of {list(CALIBRATION_MEASURES)} or another numeric column"
        )
    frames = []
    for measure in measures:
        if measure == "overconfidence":
            check_columns(scores, ["accuracy", "confidence"], "calibration_summary(overconfidence)")
            matrix = mixture_matrix(scores, "confidence", categories) - mixture_matrix(
                scores, "accuracy", categories
            )
        else:
            matrix = mixture_matrix(scores, measure, categories)
        per_benchmark = matrix.mean(axis=1).rename("value").reset_index()
        summary = (
            per_benchmark.groupby(["scale", "stage", "category"], sort=False)["value"]
            .agg(mean="mean", sd="std", min="min", max="max", n_benchmarks="size")
            .reset_index()
        )
        summary["se"] = summary["sd"] / np.sqrt(summary["n_benchmarks"])
        frames.append(summary.assign(measure=measure))
    columns = ["scale", "stage", "category", "measure", "mean", "sd", "se", "min", "max", "n_benchmarks"]
    return pd.concat(frames, ignore_index=True)[columns]
