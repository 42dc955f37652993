"""RQ1 cross-stage transfer on planted structure (magiclib.analysis.transfer)."""

import math

import numpy as np
import pytest

from magiclib.analysis import category_transfer, make_scores, transfer_table
from magiclib.analysis.synthetic import plant_sft

BENCHMARKS = {
    "hellaswag": "commonsense",
    "piqa": "commonsense",
    "sciq": "science",
    "arc_easy": "science",
    "rte": "nli",
    "wic": "semantic",
}
MINIMUM_TWO_SIDED_P = 2 / math.factorial(9)


def test_planted_perfect_transfer_and_reversal():
    scores = plant_sft(make_scores(benchmarks=BENCHMARKS), "sciq", "accuracy", lambda pt: 0.5 * pt + 0.3)
    scores = plant_sft(scores, "rte", "accuracy", lambda pt: 1 - pt)
    table = transfer_table(scores, metrics="accuracy", n_boot=199).set_index(["scale", "benchmark", "method"])
    for scale in ("mini-s", "mini-l"):
        for method in ("pearson", "spearman", "kendall"):
            perfect, reversed_ = table.loc[(scale, "sciq", method)], table.loc[(scale, "rte", method)]
            assert perfect["r"] == pytest.approx(1.0) and perfect["p"] == pytest.approx(MINIMUM_TWO_SIDED_P)
            assert reversed_["r"] == pytest.approx(-1.0) and reversed_["p"] == pytest.approx(
                MINIMUM_TWO_SIDED_P
            )
    assert len(table) == 2 * len(BENCHMARKS) * 3
    assert {"ci_low", "ci_high", "fisher_low", "fisher_high", "category", "metric"} <= set(table.columns)


def test_category_means_with_a_joint_permutation_p():
    scores = make_scores(benchmarks=BENCHMARKS)
    for benchmark in ("sciq", "arc_easy"):
        scores = plant_sft(scores, benchmark, "confidence", lambda pt: 2 * pt)
    table = category_transfer(scores, metrics="confidence", n_boot=199)
    science = table[table["category"] == "science"].set_index("scale")
    assert science["mean_r"].tolist() == pytest.approx([1.0, 1.0])
    assert science["p"].tolist() == pytest.approx([MINIMUM_TWO_SIDED_P] * 2)
    assert science["n_benchmarks"].tolist() == [2, 2]
    per_benchmark = transfer_table(scores, metrics="confidence", methods="pearson", n_boot=199)
    overall = table[table["category"] == "all"].set_index("scale")["mean_r"]
    np.testing.assert_allclose(overall, per_benchmark.groupby("scale", sort=False)["r"].mean())
    assert table["category"].tolist()[:5] == ["commonsense", "science", "nli", "semantic", "all"]
