"""Web source and code share effects, and the planted reversal (magiclib.analysis.effects)."""

import numpy as np
import pytest

from magiclib.analysis import (
    code_share_effects,
    make_scores,
    pooled_effects,
    reversal_check,
    web_source_effects,
)

BENCHMARKS = {
    "hellaswag": "commonsense",
    "piqa": "commonsense",
    "sciq": "science",
    "mnli": "nli",
    "rte": "nli",
}


def _planted(effect_of_v2: dict, code_slope: float = 0.0):
    """accuracy = 0.5 + effect of V2 (per scale and category) + code_slope * code share, exactly."""
    scores = make_scores(benchmarks=BENCHMARKS)
    is_v2 = scores["web_source"] == "V2"
    effect = [
        effect_of_v2.get((scale, category), 0.0)
        for scale, category in zip(scores["scale"], scores["category"], strict=True)
    ]
    scores["accuracy"] = 0.5 + is_v2 * np.array(effect) + code_slope * scores["code_share"]
    return scores


def test_planted_reversal_is_detected():
    scores = _planted(
        {
            ("mini-s", "nli"): 0.05,
            ("mini-l", "nli"): -0.04,
            ("mini-s", "science"): 0.02,
            ("mini-l", "science"): 0.03,
        }
    )
    table = reversal_check(scores, n_boot=199).set_index(["stage", "scale", "category"])
    assert table.loc[("PT", "mini-s", "nli"), "difference_pp"] == pytest.approx(5.0)
    assert table.loc[("PT", "mini-l", "nli"), "difference_pp"] == pytest.approx(-4.0)
    assert table.loc[("SFT", "mini-l", "nli"), ["ci_low_pp", "ci_high_pp"]].tolist() == pytest.approx(
        [-4.0, -4.0]
    )
    reverses = table.groupby(["stage", "category"])["reverses"].all()
    assert reverses[("PT", "nli")] and reverses[("SFT", "nli")]
    assert not reverses[("PT", "science")] and not reverses[("PT", "commonsense")]
    assert table.loc[("PT", "mini-s", "commonsense"), "sign"] == 0
    with pytest.raises(ValueError, match="'V4'"):
        reversal_check(scores, treated="V4")


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")  # exact fits: zero residual variance
def test_code_share_correlation_and_ols_recover_planted_effects():
    scores = _planted({("mini-s", "science"): 0.03, ("mini-l", "science"): 0.03}, code_slope=-0.2)
    code = code_share_effects(scores, n_boot=99).set_index("benchmark")
    assert code.loc[["hellaswag", "mnli"], "r"].tolist() == pytest.approx([-1.0] * 8)
    assert (code.loc["sciq", "r"] > -1).all()  # the V2 lift on sciq breaks the straight line
    ols = web_source_effects(scores).set_index(["scale", "stage", "benchmark", "term"])
    assert ols.loc[("mini-l", "SFT", "sciq", "web_source[V2]"), "coef"] == pytest.approx(0.03)
    assert ols.loc[("mini-l", "SFT", "sciq", "web_source[V3]"), "coef"] == pytest.approx(0.0, abs=1e-12)
    assert ols.loc[("mini-s", "PT", "rte", "code_share"), "coef"] == pytest.approx(-0.2)
    assert set(ols["n"]) == {9}
    pooled = pooled_effects(scores).set_index(["stage", "term"])
    assert pooled.loc[("PT", "code_share"), "coef"] == pytest.approx(-0.2)
    assert pooled.loc[("PT", "web_source[V2]"), "coef"] == pytest.approx(
        0.03 / 5
    )  # sciq is 1 of 5 benchmarks
    assert "C(scale)" in pooled["formula"].iloc[0]
