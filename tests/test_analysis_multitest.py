"""Holm and Benjamini-Hochberg columns for any table with p-values (magiclib.analysis.multitest)."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from magiclib.analysis import adjust_pvalues

P = [0.001, 0.01, 0.02, 0.04, 0.2, 0.5]


def test_matches_statsmodels_over_the_whole_table():
    adjusted = adjust_pvalues(pd.DataFrame({"p": P}))
    np.testing.assert_allclose(adjusted["p_holm"], multipletests(P, method="holm")[1])
    np.testing.assert_allclose(adjusted["p_bh"], multipletests(P, method="fdr_bh")[1])


def test_families_and_missing_values():
    table = pd.DataFrame({"p": P + [np.nan], "metric": ["a"] * 3 + ["b"] * 4})
    adjusted = adjust_pvalues(table, by="metric")
    np.testing.assert_allclose(adjusted["p_holm"][:3], multipletests(P[:3], method="holm")[1])
    np.testing.assert_allclose(adjusted["p_bh"][3:6], multipletests(P[3:], method="fdr_bh")[1])
    assert np.isnan(adjusted["p_bh"].iloc[-1])
    assert "p_holm" not in table.columns  # the input is left alone


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="no 'p_value' column"):
        adjust_pvalues(pd.DataFrame({"p": P}), p_column="p_value")
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust_pvalues(pd.DataFrame({"p": P}), methods=["bonferonni"])
