"""Reliability diagrams: accuracy per confidence bin, pooled over items, for any grouping of runs.

A calibration summary (ECE, Brier) is one number per benchmark; a reliability diagram shows where the
miscalibration sits. Items from many benchmarks and mixtures are pooled per group (e.g. per scale and
stage), binned by confidence on equal-width bins (i/n, (i+1)/n], the bins of `metrics.ece_equal_width`,
and each bin gives its mean confidence, its accuracy and its item count. Input is the per-item table of
`metrics.item_table` (columns confidence and correct, plus any grouping keys).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import BadValue
from ..metrics import ECE_EQUAL_WIDTH_BINS
from .tables import as_tuple


def reliability_bins(
    items: pd.DataFrame, by: str | Sequence[str] = ("scale", "stage"), n_bins: int = ECE_EQUAL_WIDTH_BINS
) -> pd.DataFrame:
    """Per group of `by` and confidence bin: mean confidence, accuracy, item count, and the bin's edges.

    Empty bins are left out. Columns: the `by` keys, bin, bin_low, bin_high, confidence, accuracy, count.
    """
    by = list(as_tuple(by))
    missing = [c for c in [*by, "confidence", "correct"] if c not in items.columns]
    if missing:
        raise BadValue(
            f"reliability_bins needs column(s) {missing}; pass metrics.item_table(items) and `by` "
            f"columns it has ({', '.join(map(str, items.columns))})"
        )
    if n_bins < 1:
        raise BadValue(f"n_bins must be a positive number of bins, got {n_bins}")
    confidence = items["confidence"].to_numpy(float)
    # (i/n, (i+1)/n] as metrics.ece_equal_width, so the diagram shows the bins ECE-15 is computed on
    bin_of = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    # groups in order of first appearance, bins low to high within each
    group = items.groupby(by, sort=False).ngroup().to_numpy()
    binned = items[by].assign(group=group, bin=bin_of, confidence=confidence,
                              correct=items["correct"].astype(float))
    table = (
        binned.groupby(["group", *by, "bin"], sort=True)
        .agg(confidence=("confidence", "mean"), accuracy=("correct", "mean"), count=("correct", "size"))
        .reset_index()
        .drop(columns="group")
    )
    table.insert(len(by) + 1, "bin_low", table["bin"] / n_bins)
    table.insert(len(by) + 2, "bin_high", (table["bin"] + 1) / n_bins)
    return table
