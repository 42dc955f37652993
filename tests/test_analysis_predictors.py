"""RQ2: decision accuracy and its tie rules, predictor ranking, sign flips (magiclib.analysis.predictors)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from magiclib.analysis import decision_accuracy, make_scores, predictor_ranking, sign_flips, transfer_table
from magiclib.analysis.synthetic import plant_sft

BENCHMARKS = {"piqa": "commonsense", "sciq": "science", "rte": "nli", "wic": "semantic"}


def test_without_ties_decision_accuracy_is_one_plus_kendall_tau_over_two():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.normal(size=9), rng.normal(size=9)
        expected = (1 + sps.kendalltau(x, y).statistic) / 2
        assert decision_accuracy(x, y, "drop") == pytest.approx(expected)
        assert decision_accuracy(x, y, "half") == pytest.approx(expected)


def test_tie_rules():
    # Pairs: (0,1) (0,2) (0,3) (2,3) ordered the same, (1,3) opposite, (1,2) tied in x.
    x, y = [1, 2, 2, 3], [1, 3, 2, 2.5]
    assert decision_accuracy(x, y, "drop") == pytest.approx(4 / 5)  # the tied pair is left out
    assert decision_accuracy(x, y, "half") == pytest.approx(4.5 / 6)  # the tied pair counts 1/2
    gamma, tau_a = (4 - 1) / (4 + 1), (4 - 1) / 6
    assert decision_accuracy(x, y, "drop") == pytest.approx((1 + gamma) / 2)
    assert decision_accuracy(x, y, "half") == pytest.approx((1 + tau_a) / 2)
    assert decision_accuracy([1, 1, 1], [1, 2, 3], "half") == 0.5
    assert np.isnan(decision_accuracy([1, 1, 1], [1, 2, 3], "drop"))
    with pytest.raises(ValueError, match="unknown tie rule"):
        decision_accuracy(x, y, "ignore")


def test_ranking_puts_a_planted_perfect_predictor_first():
    scores = plant_sft(make_scores(benchmarks=BENCHMARKS), "sciq", "accuracy", lambda pt: pt + 0.1)
    ranking = predictor_ranking(scores, n_boot=199)
    assert ranking["scale"].nunique() == 2
    for _, table in ranking.groupby("scale"):
        top = table.iloc[0]
        assert (top["benchmark"], top["rank"], top["verdict"]) == ("sciq", 1, "robust")
        assert top["decision_accuracy"] == 1.0
        assert table["rank"].is_monotonic_increasing


def _near(pt):
    """pt plus a small deterministic wobble: r close to, but not exactly, 1 (|r| = 1 has no interval)."""
    return pt + 0.2 * pt.std() * np.sin(np.arange(len(pt)))


def _flipped_table(n_boot=199):
    scores = make_scores(benchmarks=BENCHMARKS)
    small = scores["scale"] == "mini-s"
    flipped = plant_sft(scores[small], "rte", "accuracy", _near)
    flipped = [flipped, plant_sft(scores[~small], "rte", "accuracy", lambda pt: -_near(pt))]
    return transfer_table(pd.concat(flipped), metrics="accuracy", methods="pearson", n_boot=n_boot)


def test_sign_flips_between_scales():
    table = _flipped_table()
    flips = sign_flips(table).set_index("benchmark")
    assert flips.loc["rte", "r_from"] > 0.9 and flips.loc["rte", "r_to"] < -0.9
    assert flips.loc["rte", "flips"] and flips.loc["rte", "confident_flip"]
    assert (flips.loc["rte", "scale_from"], flips.loc["rte", "scale_to"]) == ("mini-s", "mini-l")
    with pytest.raises(ValueError, match="sign_flips needs columns"):
        sign_flips(table.drop(columns="ci_low"))


def test_sign_flips_never_take_the_order_of_scales_from_row_order():
    table = _flipped_table()
    expected = sign_flips(table)
    reversed_rows = table.iloc[::-1].reset_index(drop=True)  # what sorting a CSV did
    assert sign_flips(reversed_rows).set_index("benchmark").loc["rte", "scale_from"] == "mini-s"
    again = sign_flips(reversed_rows).set_index("benchmark").loc[expected["benchmark"]].reset_index()
    pd.testing.assert_frame_equal(again[expected.columns], expected)
    without_sizes = reversed_rows.drop(columns="n_params")
    with pytest.raises(ValueError, match="no n_params column.*scales="):
        sign_flips(without_sizes)
    explicit = sign_flips(without_sizes, scales=["mini-s", "mini-l"]).set_index("benchmark")
    assert explicit.loc["rte", "r_from"] == pytest.approx(expected.set_index("benchmark").loc["rte", "r_from"])


def test_a_flip_between_unreliable_intervals_is_never_confident():
    table = _flipped_table()
    assert sign_flips(table).set_index("benchmark").loc["rte", "confident_flip"]
    table["ci_reliable"] = False  # e.g. heavily tied vectors, whose intervals are pushed away from 0
    assert not sign_flips(table)["confident_flip"].any()


def test_predictor_verdicts_use_adjusted_p_values():
    scores = plant_sft(make_scores(benchmarks=BENCHMARKS), "sciq", "accuracy", _near)
    ranking = predictor_ranking(scores, n_boot=199)
    assert "p_holm" in ranking and (ranking["p_holm"] >= ranking["p"]).all()
    expected = np.where(ranking["p_holm"] < 0.05, np.where(ranking["r"] > 0, "robust", "reversed"), "uncertain")
    assert ranking["verdict"].tolist() == expected.tolist()
    # A raw p just under .05 among 8 tests is not enough for a verdict after adjustment.
    raw_only = ranking[(ranking["p"] < 0.05) & (ranking["p_holm"] >= 0.05)]
    assert (raw_only["verdict"] == "uncertain").all()
    bh = predictor_ranking(scores, adjust="bh", n_boot=199)
    assert "p_bh" in bh and set(bh["verdict"]) <= {"robust", "reversed", "uncertain"}
    with pytest.raises(ValueError, match="unknown adjustment"):
        predictor_ranking(scores, adjust="bonferroni")
