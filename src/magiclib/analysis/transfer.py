"""RQ1: do the mixture rankings of pretraining survive fine-tuning? Cross-stage transfer per benchmark.

The paper: r(b) = Pearson corr(score_b^PT, score_b^SFT) across the 9 mixtures, for accuracy and confidence,
averaged per category (240M: mean accuracy r 0.49, confidence r 0.68; 1B: 0.60 and 0.39). We add
Spearman and Kendall, the gold-answer probability, a permutation p-value (exact for the null of
independence, not for rho = 0 under dependence; see `stats`) and an interval for every coefficient, and a
category mean with its own interval and joint permutation p-value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .stats import METHODS, correlate, mean_correlation
from .tables import CATEGORIES, METRICS, as_tuple, mixture_matrix, stage_pairs, with_scale_sizes

ALL = "all"  # the category label of the mean over every benchmark


def transfer_table(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = METRICS,
    methods: str | Sequence[str] = METHODS,
    categories: Sequence[str] = CATEGORIES,
    **options,
) -> pd.DataFrame:
    """corr(PT, SFT) across mixtures per (scale, metric, benchmark, method).

    Columns: scale, n_params (when the scores have it), metric, category, benchmark, method, n, r, p,
    ci_low, ci_high, ci_method, ci_reliable, fisher_low, fisher_high, boot_low, boot_high, boot_degenerate
    (see `stats.correlate`). `options` go to `stats.correlate` (alternative, n_boot, level, seed).
    """
    rows = []
    for metric in as_tuple(metrics):
        pairs = list(stage_pairs(mixture_matrix(scores, metric, categories)))
        for scale, category, benchmark, pt, sft in tqdm(pairs, desc=f"transfer {metric}", leave=False):
            for method in as_tuple(methods):
                rows.append(
                    {
                        "scale": scale,
                        "metric": metric,
                        "category": category,
                        "benchmark": benchmark,
                        **correlate(pt, sft, method, **options),
                    }
                )
    return with_scale_sizes(pd.DataFrame(rows), scores)


def category_transfer(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = METRICS,
    methods: str | Sequence[str] = ("pearson",),
    categories: Sequence[str] = CATEGORIES,
    **options,
) -> pd.DataFrame:
    """The mean cross-stage r per (scale, metric, category, method), plus category "all" (every benchmark).

    The paper reported these means bare. The interval resamples mixtures jointly for all benchmarks of
    the category; the p-value permutes the mixtures of SFT against PT the same way for every benchmark.
    Columns: scale, metric, category, method, n, n_benchmarks, mean_r, p, ci_low, ci_high, ci_method,
    ci_reliable, boot_degenerate.
    `options` go to `stats.mean_correlation`.
    """
    rows = []
    for metric in as_tuple(metrics):
        pairs = pd.DataFrame(
            stage_pairs(mixture_matrix(scores, metric, categories)),
            columns=["scale", "category", "benchmark", "pt", "sft"],
        )
        groups = []
        for scale, at_scale in pairs.groupby("scale", sort=False):
            groups += [
                (scale, category, group) for category, group in at_scale.groupby("category", sort=False)
            ]
            groups.append((scale, ALL, at_scale))
        for scale, category, group in tqdm(groups, desc=f"category transfer {metric}", leave=False):
            for method in as_tuple(methods):
                summary = mean_correlation(np.stack(group["pt"]), np.stack(group["sft"]), method, **options)
                summary["n_benchmarks"] = summary.pop("n_rows")
                rows.append({"scale": scale, "metric": metric, "category": category, **summary})
    return pd.DataFrame(rows)
