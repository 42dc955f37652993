"""The synthetic scores table: the runner's schema, deterministic by seed (magiclib.analysis.synthetic)."""

import pandas as pd
import pytest

from magiclib.analysis import make_scores
from magiclib.analysis.synthetic import plant_sft

COLUMNS = {
    "mixture",
    "web_source",
    "proportions",
    "code_share",
    "scale",
    "n_params",
    "stage",
    "seed",
    "benchmark",
    "category",
    "n",
    "score_rule",
    "acc",
    "acc_norm",
    "accuracy",
    "accuracy_se",
    "confidence",
    "confidence_se",
    "gold_prob",
    "gold_prob_se",
    "ece",
    "ece_15",
    "brier",
}


def test_schema_size_and_determinism():
    scores = make_scores(seeds=(0, 1))
    assert set(scores.columns) == COLUMNS
    assert len(scores) == 9 * 2 * 2 * 2 * 20  # mixtures x scales x stages x seeds x benchmarks
    assert scores["accuracy"].between(0, 1).all()
    pd.testing.assert_frame_equal(scores, make_scores(seeds=(0, 1)))
    assert not make_scores(seed=1)["accuracy"].equals(make_scores(seed=0)["accuracy"])


def test_plant_sft_sets_sft_from_pt_and_leaves_the_rest():
    scores = make_scores(benchmarks={"rte": "nli", "wic": "semantic"})
    planted = plant_sft(scores, "rte", "accuracy", lambda pt: 1 - pt)
    keys = ["scale", "mixture", "seed"]
    rte = planted[planted["benchmark"] == "rte"]
    pt = rte[rte["stage"] == "PT"].set_index(keys)["accuracy"].sort_index()
    sft = rte[rte["stage"] == "SFT"].set_index(keys)["accuracy"].sort_index()
    pd.testing.assert_series_equal(sft, 1 - pt)
    untouched = (planted["benchmark"] == "wic") | (planted["stage"] == "PT")
    pd.testing.assert_frame_equal(planted[untouched], scores[untouched])
    with pytest.raises(ValueError, match="benchmark 'cb' is not in the table"):
        plant_sft(scores, "cb", "accuracy", lambda pt: pt)
