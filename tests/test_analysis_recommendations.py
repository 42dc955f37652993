"""The paper's recommendations as tested claims (magiclib.analysis.recommendations)."""

import numpy as np
import pytest

from magiclib.analysis import make_scores
from magiclib.analysis import recommendations as rec

BENCHMARKS = {"hellaswag": "commonsense", "piqa": "commonsense", "copa": "commonsense", "sciq": "science",
              "arc_easy": "science", "mnli": "nli", "rte": "nli", "wic": "semantic", "multirc": "semantic"}
SCALES = {"small": 1, "large": 2}


def _copy_scale(scores, metric, source="small", target="large"):
    """Give the `target` scale the `source` scale's values of `metric` (same stage, benchmark, mixture)."""
    keys = ["stage", "benchmark", "mixture", "seed"]
    values = scores[scores["scale"] == source].set_index(keys)[metric]
    at_target = scores["scale"] == target
    scores.loc[at_target, metric] = values.loc[scores.loc[at_target, keys].apply(tuple, axis=1)].to_numpy()
    return scores


@pytest.mark.parametrize(
    ("estimate", "p", "direction", "expected"),
    [(0.5, 0.01, 1, "supported"), (-0.5, 0.01, 1, "not supported"), (-0.5, 0.01, -1, "supported"),
     (0.5, 0.2, 1, "inconclusive"), (np.nan, 0.01, 1, "inconclusive"), (0.5, np.nan, 1, "inconclusive")],
)
def test_verdict_rule(estimate, p, direction, expected):
    assert rec.verdict(estimate, p, direction) == expected


def test_category_aggregates_average_each_category():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    aggregates = rec.category_aggregates(scores, "accuracy")
    assert list(dict.fromkeys(aggregates["benchmark"])) == [
        "commonsense (mean)", "science (mean)", "nli (mean)", "semantic (mean)"]
    row = aggregates.iloc[0]
    members = scores[(scores["mixture"] == row["mixture"]) & (scores["stage"] == row["stage"])
                     & (scores["category"] == "commonsense")]
    assert row["accuracy"] == pytest.approx(members["accuracy"].mean())


def test_transfer_that_repeats_across_scales_is_stable():
    scores = _copy_scale(make_scores(scales=SCALES, benchmarks=BENCHMARKS), "accuracy")
    table = rec.transfer_stability(scores, n_boot=99)
    assert table[["scale_from", "scale_to", "n_benchmarks"]].iloc[0].tolist() == ["small", "large", 9]
    assert table["r"].iloc[0] == pytest.approx(1.0)
    assert table["verdict"].iloc[0] == "supported"


def test_aggregate_advantage_is_aggregate_minus_members():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    table = rec.aggregate_advantage(scores, n_boot=99)
    assert table["category"].tolist() == ["commonsense", "science", "nli", "semantic"]
    assert table["advantage"].to_numpy() == pytest.approx(table["aggregate_r"] - table["members_r"])
    # a category of one benchmark: the aggregate is that benchmark
    single = make_scores(scales={"only": 1}, benchmarks={"sciq": "science"})
    one = rec.aggregate_advantage(single, n_boot=99)
    assert one["advantage"].iloc[0] == pytest.approx(0.0)


def test_sign_test_counts_nonzero_differences():
    assert rec.sign_test([0.1] * 8 + [0.0]) == pytest.approx(
        {"n": 8, "positive": 8, "p": 2 / 256, "verdict": "supported"})
    assert rec.sign_test([-0.1] * 8)["verdict"] == "not supported"
    assert rec.sign_test([0.1, -0.1, 0.2])["verdict"] == "inconclusive"


def test_confidence_that_foretells_sft_accuracy_is_found():
    scores = make_scores(scales=SCALES, benchmarks=BENCHMARKS)
    rng = np.random.default_rng(1)
    pt = scores["stage"] == "PT"
    scores.loc[pt, "confidence"] = rng.uniform(0.4, 0.9, pt.sum())  # unrelated to PT accuracy
    scores.loc[~pt, "accuracy"] = scores.loc[pt, "confidence"].to_numpy()  # but it is SFT accuracy
    table = rec.confidence_increment(scores)
    confidence = table[table["term"] == "pt_confidence"]
    assert confidence["coef"].to_numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert confidence["verdict"].tolist() == ["supported", "supported"]
    assert confidence["n_benchmarks"].tolist() == [9, 9]


def test_rankings_that_repeat_across_scales_agree():
    scores = _copy_scale(make_scores(scales=SCALES, benchmarks=BENCHMARKS), "accuracy")
    table = rec.scale_agreement(scores, n_boot=99)
    assert table["r"].to_numpy() == pytest.approx([1.0] * 4)
    assert table["same_best"].all() and (table["verdict"] == "supported").all()


def test_overall_needs_every_test_to_agree():
    assert rec.overall(["supported", "supported"]) == "supported"
    assert rec.overall(["not supported"] * 3) == "not supported"
    assert rec.overall(["supported", "inconclusive"]) == "inconclusive"
    assert rec.overall([]) == "inconclusive"


def test_summary_reads_scale_agreement_against_the_recommendation():
    scores = _copy_scale(make_scores(scales=SCALES, benchmarks=BENCHMARKS), "accuracy")
    options = {"n_boot": 99}
    tables = (rec.transfer_stability(scores, **options), rec.aggregate_advantage(scores, **options),
              rec.confidence_increment(scores), rec.scale_agreement(scores, **options))
    summary = rec.recommendation_summary(*tables).set_index("recommendation")
    assert len(summary) == 4 and set(summary["verdict"]) <= set(rec.VERDICTS)
    # identical rankings at both scales: a second scale would have changed no decision
    assert summary.loc["validate mixture decisions at two or more scales", "verdict"] == "not supported"
    assert summary.loc["choose benchmarks by measured transfer", "verdict"] == "supported"
    # reversed rankings at the larger scale: validating there is what catches it
    flipped = scores.copy()
    large = flipped["scale"] == "large"
    flipped.loc[large, "accuracy"] = 1 - flipped.loc[large, "accuracy"]
    agreement = rec.scale_agreement(flipped, **options)
    summary = rec.recommendation_summary(*tables[:3], agreement).set_index("recommendation")
    assert summary.loc["validate mixture decisions at two or more scales", "verdict"] == "supported"


def test_summary_of_a_single_scale_is_inconclusive_where_it_needs_two():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    tables = (rec.transfer_stability(scores, n_boot=99), rec.aggregate_advantage(scores, n_boot=99),
              rec.confidence_increment(scores), rec.scale_agreement(scores, n_boot=99))
    summary = rec.recommendation_summary(*tables).set_index("recommendation")
    assert summary.loc["choose benchmarks by measured transfer", ["n_tests", "verdict"]].tolist() == [
        0, "inconclusive"]
    assert summary.loc["validate mixture decisions at two or more scales", "verdict"] == "inconclusive"
