"""RQ4: r_align on both axes, alignment persistence, calibration summaries (magiclib.analysis.calibration)."""

import numpy as np
import pytest

from magiclib.analysis import (
    alignment,
    alignment_by_benchmark,
    alignment_persistence,
    calibration_summary,
    make_scores,
)

BENCHMARKS = {
    "hellaswag": "commonsense",
    "piqa": "commonsense",
    "copa": "commonsense",
    "sciq": "science",
    "arc_easy": "science",
    "arc_challenge": "science",
    "rte": "nli",
    "mnli": "nli",
    "cb": "nli",
}


def test_planted_alignment_is_found_on_both_axes():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    scores["confidence"] = 0.5 * scores["accuracy"] + 0.3
    table = alignment(scores, n_boot=99)
    assert table["r"].tolist() == pytest.approx([1.0] * len(table))
    assert set(table["axis"]) == {"benchmarks", "mixtures"}
    by_axis = table.set_index(["stage", "category", "axis"])
    assert by_axis.loc[("PT", "science", "benchmarks"), "n"] == 3
    assert by_axis.loc[("PT", "science", "mixtures"), "n"] == 9
    assert by_axis.loc[("PT", "science", "benchmarks"), "p"] == pytest.approx(2 / 6)  # 3! pairings, two-sided
    assert by_axis.loc[("PT", "science", "mixtures"), "p"] < 1e-4
    assert alignment_by_benchmark(scores, n_boot=99)["r"].tolist() == pytest.approx([1.0] * 18)


def test_alignment_axes_can_disagree():
    # Mixtures that raise accuracy lower confidence (r = -1 across mixtures), while benchmarks that are
    # easier on average are also surer (positive across benchmarks).
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    benchmark_mean = scores.groupby(["stage", "benchmark"])["accuracy"].transform("mean")
    scores["confidence"] = benchmark_mean - (scores["accuracy"] - benchmark_mean)
    table = alignment(scores, n_boot=99).set_index(["stage", "category", "axis"])
    assert table.loc[("PT", "nli", "mixtures"), "r"] == pytest.approx(-1.0)
    assert table.loc[("PT", "nli", "benchmarks"), "r"] == pytest.approx(1.0)


def test_persistence_of_a_planted_calibration_fingerprint():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    rng = np.random.default_rng(0)
    gap = dict(zip(scores["benchmark"].unique(), rng.normal(0.1, 0.05, len(BENCHMARKS)), strict=True))
    per_row = scores["benchmark"].map(gap) + 0.01 * scores["code_share"]
    scores["confidence"] = scores["accuracy"] + np.where(scores["stage"] == "PT", per_row, 2 * per_row)
    table = alignment_persistence(scores, n_boot=99)
    assert table["r"].tolist() == pytest.approx([1.0] * len(table))
    assert set(table.columns) >= {"scale", "category", "axis", "r", "p", "ci_low", "ci_high", "n_benchmarks"}
    assert "stage" not in table.columns


def test_calibration_summary_matches_a_direct_groupby():
    scores = make_scores(benchmarks=BENCHMARKS)
    table = calibration_summary(scores).set_index(["scale", "stage", "category", "measure"])
    direct = scores.groupby(["scale", "stage", "category", "benchmark"])["brier"].mean()
    expected = direct.groupby(["scale", "stage", "category"]).agg(["mean", "std"])
    got = table.xs("brier", level="measure").loc[expected.index]
    np.testing.assert_allclose(got["mean"], expected["mean"])
    np.testing.assert_allclose(got["sd"], expected["std"])
    over = table.xs("overconfidence", level="measure").loc[("mini-s", "PT", "nli"), "mean"]
    nli = scores[(scores["scale"] == "mini-s") & (scores["stage"] == "PT") & (scores["category"] == "nli")]
    assert over == pytest.approx((nli["confidence"] - nli["accuracy"]).mean())
    with pytest.raises(ValueError, match="'ece_10'"):
        calibration_summary(scores, measures=["ece_10"])
