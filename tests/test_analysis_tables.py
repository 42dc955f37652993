"""The scores table into mixture vectors: seed-means, orders and clear errors (magiclib.analysis.tables)."""

import pandas as pd
import pytest

from magiclib.analysis import make_scores
from magiclib.analysis.tables import mixture_matrix, mixture_means, scale_order, stage_pairs

BENCHMARKS = {"sciq": "science", "wic": "semantic", "piqa": "commonsense", "rte": "nli"}


def test_mixture_means_average_seeds_and_keep_mixture_attributes():
    scores = make_scores(benchmarks=BENCHMARKS, seeds=(0, 1))
    means = mixture_means(scores, "accuracy")
    expected = scores.groupby(["scale", "stage", "benchmark", "mixture"])["accuracy"].mean()
    got = means.set_index(["scale", "stage", "benchmark", "mixture"])["value"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index().round(12), check_names=False)
    assert set(means["n_seeds"]) == {2} and {"web_source", "code_share"} <= set(means.columns)


def test_orders_follow_n_params_and_the_category_list():
    scores = make_scores(scales={"big": 9_000, "small": 10}, benchmarks=BENCHMARKS)
    assert scale_order(scores) == ["small", "big"]
    matrix = mixture_matrix(scores, "accuracy")
    first_rows = matrix.index[:4]
    assert [key[0] for key in first_rows] == ["small"] * 4
    assert [key[2] for key in first_rows] == ["commonsense", "science", "nli", "semantic"]
    assert list(matrix.columns) == sorted(matrix.columns)


def test_the_order_of_scales_never_comes_from_row_order():
    scores = make_scores(scales={"big": 9_000, "small": 10}, benchmarks=BENCHMARKS)
    assert scale_order(scores.iloc[::-1]) == ["small", "big"]  # n_params decides, whatever the row order
    bare = scores.drop(columns="n_params")
    with pytest.raises(ValueError, match=r"no n_params column.*pass scales=\[smallest, \.\.\., largest\]"):
        scale_order(bare)
    assert scale_order(bare, ["small", "big"]) == scale_order(bare.iloc[::-1], ["small", "big"]) == ["small", "big"]
    assert scale_order(bare, ["big", "small"]) == ["big", "small"]  # explicit beats n_params, as asked
    with pytest.raises(ValueError, match="must name each scale"):
        scale_order(bare, ["small"])
    assert scale_order(bare[bare["scale"] == "big"]) == ["big"]  # one scale needs no order
    # Sorting output rows needs no order, and does not follow row order either.
    assert scale_order(bare.iloc[::-1], required=False) == ["big", "small"]
    assert len(mixture_matrix(bare, "accuracy")) == len(mixture_matrix(scores, "accuracy"))


def test_category_names_must_be_the_registrys():
    scores = make_scores(benchmarks=BENCHMARKS)
    scores.loc[scores["category"] == "nli", "category"] = "NLI"
    with pytest.raises(ValueError, match=r"unknown category\(ies\) \['NLI'\]; allowed.*'nli'") as error:
        mixture_means(scores, "accuracy")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="Science"):
        mixture_matrix(make_scores(benchmarks=BENCHMARKS), "accuracy", categories=("Science",))


def test_scores_equal_as_fractions_stay_tied_after_seed_averaging():
    scores = make_scores(benchmarks={"rte": "nli"}, seeds=(0, 1))
    # (0.1 + 0.7) / 2 is 0.39999999999999997 in floating point, (0.3 + 0.5) / 2 is 0.4
    first = {0: 0.1, 1: 0.7}
    second = {0: 0.3, 1: 0.5}
    scores["accuracy"] = [
        (first if mixture.endswith("P0") else second)[seed]
        for mixture, seed in zip(scores["mixture"], scores["seed"], strict=True)
    ]
    assert mixture_means(scores, "accuracy")["value"].nunique() == 1


def test_a_missing_cell_is_named():
    scores = make_scores(benchmarks=BENCHMARKS)
    holed = scores[
        ~((scores["mixture"] == "V2-P1") & (scores["benchmark"] == "rte") & (scores["stage"] == "SFT"))
    ]
    with pytest.raises(ValueError, match=r"V2-P1.*all 9 mixtures"):
        mixture_matrix(holed, "accuracy")


def test_bad_tables_get_clear_errors():
    scores = make_scores(benchmarks=BENCHMARKS)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['category'\]"):
        mixture_means(scores.drop(columns="category"), "accuracy")
    with pytest.raises(ValueError, match="metric 'acuracy' is not a column"):
        mixture_means(scores, "acuracy")
    with pytest.raises(ValueError, match="missing values"):
        mixture_means(scores.assign(accuracy=float("nan")), "accuracy")
    with pytest.raises(ValueError, match="need both PT and SFT"):
        list(stage_pairs(mixture_matrix(scores[scores["stage"] == "PT"], "accuracy")))
