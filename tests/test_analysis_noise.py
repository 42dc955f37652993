"""Between-seed against between-mixture spread (magiclib.analysis.noise)."""

import numpy as np
import pytest

from magiclib.analysis import make_scores, signal_to_noise


def test_planted_seed_and_mixture_spread():
    scores = make_scores(scales={"only": 1}, benchmarks={"rte": "nli"}, seeds=(0, 1))
    mixture_effect = scores["mixture"].map(
        {m: 0.01 * i for i, m in enumerate(sorted(set(scores["mixture"])))}
    )
    scores["accuracy"] = 0.5 + mixture_effect + np.where(scores["seed"] == 0, -0.002, 0.002)
    table = signal_to_noise(scores, "accuracy").iloc[0]
    assert table["between_seed_sd"] == pytest.approx(np.std([-0.002, 0.002], ddof=1))
    assert table["between_mixture_sd"] == pytest.approx(np.std(0.01 * np.arange(9), ddof=1))
    assert table["snr_seed"] == pytest.approx(table["between_mixture_sd"] / table["between_seed_sd"])
    assert table["item_se"] == pytest.approx(np.sqrt(np.mean(scores["accuracy_se"][:9] ** 2)), rel=0.05)
    assert (table["n_seeds"], table["n_mixtures"]) == (2, 9)


def test_one_seed_has_no_seed_noise_but_keeps_the_item_floor():
    table = signal_to_noise(make_scores(benchmarks={"rte": "nli"}), ["accuracy", "confidence"])
    assert table["between_seed_sd"].isna().all() and table["snr_items"].notna().all()
    assert len(table) == 2 * 2 * 2  # scales x stages x metrics
