"""Multiple testing: Holm and Benjamini-Hochberg adjusted p-values for any results table.

A chapter that reports 20 benchmarks x 2 scales x 3 metrics runs 120 tests; at alpha = .05 about six
come out "significant" by chance. The paper reported none of this; every table with a p column can get
p_holm (family-wise error) and p_bh (false discovery rate) columns, via statsmodels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from ..errors import BadValue

# Our column suffix -> statsmodels' method name.
ADJUSTMENTS = {"holm": "holm", "bh": "fdr_bh"}


def adjust_pvalues(
    table: pd.DataFrame,
    p_column: str = "p",
    methods: Sequence[str] = ("holm", "bh"),
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """A copy of `table` with `<p_column>_holm` and `<p_column>_bh` columns added.

    The family is the whole table, or each group of `by` (e.g. by="metric" adjusts each metric's tests
    separately). Missing p-values stay missing and do not count as tests.
    """
    if p_column not in table.columns:
        raise BadValue(
            f"the table has no {p_column!r} column; pass p_column= the name of its p-value column"
        )
    unknown = [m for m in methods if m not in ADJUSTMENTS]
    if unknown:
        raise BadValue(f"unknown adjustment(s) {unknown}; use any of {list(ADJUSTMENTS)}")
    out = table.copy()
    p_values = out[p_column].to_numpy(dtype=float)
    families = (
        [np.arange(len(out))]
        if by is None
        else list(out.groupby(by, sort=False, dropna=False).indices.values())
    )
    for method in methods:
        adjusted = np.full(len(out), np.nan)
        for family in families:
            tested = family[~np.isnan(p_values[family])]
            if tested.size:
                adjusted[tested] = multipletests(p_values[tested], method=ADJUSTMENTS[method])[1]
        out[f"{p_column}_{method}"] = adjusted
    return out
