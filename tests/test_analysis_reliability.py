"""Reliability diagram bins (magiclib.analysis.reliability)."""

import numpy as np
import pandas as pd
import pytest

from magiclib.analysis.reliability import reliability_bins
from magiclib.metrics import ece_equal_width


def test_bins_hold_mean_confidence_accuracy_and_count():
    items = pd.DataFrame(
        {
            "stage": ["PT"] * 4 + ["SFT"] * 2,
            "confidence": [0.05, 0.1, 0.55, 1.0, 0.0, 0.95],
            "correct": [False, True, True, True, False, True],
        }
    )
    table = reliability_bins(items, by="stage", n_bins=10)
    assert table["stage"].tolist() == ["PT", "PT", "PT", "SFT", "SFT"]
    assert table["bin"].tolist() == [0, 5, 9, 0, 9]  # 0.1 belongs to (0, 0.1]; 0.0 joins the first bin
    pt_first = table.iloc[0]
    assert (pt_first["confidence"], pt_first["accuracy"], pt_first["count"]) == pytest.approx((0.075, 0.5, 2))
    assert (pt_first["bin_low"], pt_first["bin_high"]) == pytest.approx((0.0, 0.1))


def test_bins_reproduce_the_equal_width_ece():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.2, 1.0, 500)
    correct = rng.uniform(size=500) < confidence**2
    table = reliability_bins(pd.DataFrame({"g": 1, "confidence": confidence, "correct": correct}), by="g")
    ece = (table["count"] * (table["accuracy"] - table["confidence"]).abs()).sum() / len(confidence)
    assert ece == pytest.approx(ece_equal_width(confidence, correct))
    assert table["count"].sum() == 500


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"\['scale'\].*metrics.item_table"):
        reliability_bins(pd.DataFrame({"confidence": [0.5], "correct": [True]}), by="scale")
