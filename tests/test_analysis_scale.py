"""RQ3: scale differences, coherence and matrix similarity on planted structure (magiclib.analysis.scale)."""

import math

import numpy as np
import pandas as pd
import pytest

from magiclib.analysis import (
    category_scale_differences,
    coherence_means,
    coherence_pairs,
    cross_benchmark_matrix,
    make_scores,
    matrix_similarity,
    mean_steiger_z,
    scale_differences,
    steiger_z,
    transfer_table,
)
from magiclib.analysis.tables import mixture_matrix, select

BENCHMARKS = {
    "hellaswag": "commonsense",
    "piqa": "commonsense",
    "copa": "commonsense",
    "sciq": "science",
    "arc_easy": "science",
    "rte": "nli",
    "wic": "semantic",
    "wsc": "semantic",
}


def test_scale_difference_matches_the_transfer_table_and_steiger():
    scores = make_scores(benchmarks=BENCHMARKS)
    table = scale_differences(scores, "accuracy", n_boot=499)
    r = transfer_table(scores, "accuracy", "pearson", n_boot=99).set_index(["scale", "benchmark"])["r"]
    row = table.set_index("benchmark").loc["piqa"]
    assert (row["r_from"], row["r_to"]) == pytest.approx((r[("mini-s", "piqa")], r[("mini-l", "piqa")]))
    assert row["difference"] == pytest.approx(row["r_to"] - row["r_from"])
    assert row["ci_low"] < row["difference"] < row["ci_high"]
    matrix = mixture_matrix(scores, "accuracy")
    vectors = [
        select(matrix, scale=scale, stage=stage, benchmark="piqa").iloc[0]
        for scale in ("mini-s", "mini-l")
        for stage in ("PT", "SFT")
    ]
    z, p = steiger_z(np.corrcoef(vectors), (2, 3), (0, 1), 9)
    assert (row["steiger_z"], row["steiger_p"]) == pytest.approx((z, p))
    assert row["zou_low"] < row["difference"] < row["zou_high"]
    assert len(table) == len(BENCHMARKS)


def test_decisions_use_steiger_not_the_bootstrap_p():
    scores = make_scores(benchmarks=BENCHMARKS)
    table = scale_differences(scores, "accuracy", n_boot=499)
    assert table["p"].tolist() == pytest.approx(table["steiger_p"].tolist())
    assert {"p_boot", "ci_reliable"} <= set(table.columns)
    categories = category_scale_differences(scores, "accuracy", n_boot=199).set_index("category")
    matrix = mixture_matrix(scores, "accuracy")
    rows = [b for b, c in BENCHMARKS.items() if c == "commonsense"]
    before, after = (
        tuple(np.stack([select(matrix, scale=scale, stage=stage, benchmark=b).iloc[0] for b in rows])
              for stage in ("PT", "SFT"))
        for scale in ("mini-s", "mini-l")
    )
    assert categories.loc["commonsense", "p"] == pytest.approx(mean_steiger_z(before, after)[1])
    assert np.isnan(scale_differences(scores, "accuracy", "spearman", n_boot=99)["p"]).all()


def test_the_order_of_scales_never_comes_from_row_order():
    scores = make_scores(benchmarks=BENCHMARKS)
    expected = scale_differences(scores, "accuracy", n_boot=199)
    flipped = scale_differences(scores.iloc[::-1], "accuracy", n_boot=199)  # what sorting the CSV did
    assert flipped["scale_from"].eq("mini-s").all()
    assert flipped.set_index("benchmark").loc[expected["benchmark"], "difference"].tolist() == pytest.approx(
        expected["difference"].tolist())
    bare = scores.drop(columns="n_params")
    with pytest.raises(ValueError, match="no n_params column"):
        category_scale_differences(bare, "accuracy", n_boot=99)
    explicit = scale_differences(bare.iloc[::-1], "accuracy", scales=["mini-s", "mini-l"], n_boot=199)
    assert explicit["difference"].tolist() == pytest.approx(
        expected.set_index("benchmark").loc[explicit["benchmark"], "difference"].tolist())


def test_identical_scales_show_no_difference():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    twin = pd.concat([scores, scores.assign(scale="twin", n_params=2)], ignore_index=True)
    table = category_scale_differences(twin, "confidence", n_boot=199)
    assert table["difference"].tolist() == pytest.approx([0.0] * len(table))
    assert table["ci_low"].tolist() == pytest.approx([0.0] * len(table))
    assert table["p_boot"].tolist() == pytest.approx([1.0] * len(table))
    assert table["category"].tolist() == ["commonsense", "science", "nli", "semantic", "all"]
    assert np.isnan(scale_differences(twin, "confidence", "kendall", n_boot=99)["steiger_z"]).all()


def test_coherence_pairs_count_and_planted_synergy():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    commonsense = scores["category"] == "commonsense"
    hellaswag = scores[scores["benchmark"] == "hellaswag"].set_index(["stage", "mixture"])["accuracy"]
    keys = pd.MultiIndex.from_frame(scores.loc[commonsense, ["stage", "mixture"]])
    scores.loc[commonsense, "accuracy"] = hellaswag.reindex(keys).to_numpy()  # three copies of one benchmark
    pairs = coherence_pairs(scores, "accuracy")
    counts = pairs[pairs["category"] == "commonsense"].groupby("kind")["r"].agg(["size", "mean"])
    assert counts["size"].to_dict() == {"PT-PT": 3, "SFT-SFT": 3, "PT-SFT": 6}
    assert counts.loc[["PT-PT", "SFT-SFT"], "mean"].tolist() == pytest.approx([1.0, 1.0])
    means = coherence_means(scores, "accuracy", n_boot=99).set_index(["category", "kind"])
    expected = pairs.groupby(["category", "kind"])["r"].mean()
    np.testing.assert_allclose(means.loc[expected.index, "mean_r"], expected)
    assert means.loc[("semantic", "PT-SFT"), "n_pairs"] == 2


def test_cross_benchmark_matrix_is_complete_and_symmetric():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    table = cross_benchmark_matrix(scores)
    assert len(table) == 2 * len(BENCHMARKS) ** 2
    pt = table[table["stage"] == "PT"].pivot(index="benchmark_i", columns="benchmark_j", values="r")
    np.testing.assert_allclose(pt.to_numpy(), pt.to_numpy().T)
    np.testing.assert_allclose(np.diag(pt), 1.0)


def test_identical_matrices_are_maximally_similar_under_the_exact_mantel_test():
    scores = make_scores(benchmarks=BENCHMARKS)
    pt = scores[scores["stage"] == "PT"]
    same = pd.concat([pt, pt.assign(stage="SFT")], ignore_index=True)
    table = matrix_similarity(same)
    assert table["r"].tolist() == pytest.approx([1.0, 1.0])
    assert table["p_mantel"].tolist() == pytest.approx(
        [1 / math.factorial(8)] * 2
    )  # only the identity matches
    assert table["exact"].all() and (table["n_entries"] == 28).all()
    assert (table["p_naive"] < table["p_mantel"]).all()


def test_a_constant_benchmark_is_left_out_of_the_mantel_test():
    scores = make_scores(benchmarks=BENCHMARKS)
    pt = scores[scores["stage"] == "PT"].copy()
    pt.loc[pt["benchmark"] == pt["benchmark"].iloc[0], "confidence"] = 0.5  # no correlation with anything
    same = pd.concat([pt, pt.assign(stage="SFT")], ignore_index=True)
    table = matrix_similarity(same)
    assert (table["n_benchmarks"] == 7).all()
    assert table["p_mantel"].tolist() == pytest.approx([1 / math.factorial(7)] * 2)
