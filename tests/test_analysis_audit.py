"""Noise-aware transfer on planted item-level structure (magiclib.analysis.items/crossfit/components/audit).

(a) no mixture effect, but seed and item noise that persist PT -> SFT: the naive r is high, and the mixture
transfer test still holds its level. (b) a planted mixture effect with a known cross-stage r: the corrected
and mixture-component estimates recover it within their intervals. Coverage over many draws is measured
in bench/analysis_noise_transfer.py; here a few draws keep the suite fast.
"""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from magiclib import cli
from magiclib.analysis import crossfit, item_cube, make_items, mixture_transfer, per_item, transfer_audit
from magiclib.analysis.audit import VERDICTS, holm, items_needed, planning_table
from magiclib.analysis.components import mixture_covariance, variance_components
from magiclib.analysis.crossfit import hoyt, item_split
from magiclib.analysis.items import cubes, read_items


def test_item_split_is_fixed_and_even():
    split = item_split(11)
    assert split.sum() == 5 and np.array_equal(split, item_split(11))
    assert not np.array_equal(split, item_split(11, seed=1))
    with pytest.raises(ValueError, match="at least 4 items"):
        item_split(3)


def test_hoyt_reliability_is_cronbachs_alpha_with_items_as_raters():
    x = np.random.default_rng(0).normal(size=(9, 12)) + np.arange(9)[:, None] * 0.3
    n = x.shape[1]
    alpha = n / (n - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    assert float(hoyt(x)[0]) == pytest.approx(alpha)


def test_mixture_covariance_removes_seed_noise_in_expectation():
    # a and b share seed noise only (no mixture effect): the plain covariance of seed-means is positive,
    # the component estimate averages to 0
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(2000, 9, 3))
    plain = np.mean([np.cov(n.mean(-1), n.mean(-1))[0, 1] for n in noise])
    assert plain == pytest.approx(1 / 3, abs=0.03)
    assert mixture_covariance(noise, noise).mean() == pytest.approx(0.0, abs=0.02)


def test_variance_components_recover_planted_sizes():
    x = item_cube(n_seeds=4, n_items=400, sd_mixture=1.0, sd_seed=0.5, sd_item=2.0, seed=3)[0]
    parts = variance_components(x)
    assert parts["item_var"] == pytest.approx(4.0 / 400, rel=0.2)
    assert parts["seed_var"] == pytest.approx(0.25, abs=0.12)
    assert parts["mixture_var"] == pytest.approx(1.0, abs=0.6)
    assert parts["seed_p"] < 1e-6


def test_no_mixture_effect_naive_r_is_high_and_the_mixture_test_holds_its_level():
    draws = [item_cube(n_seeds=3, n_items=40, sd_mixture=0.0, sd_seed=1.0, rho_seed=0.95, sd_item=3.0,
                       rho_item=0.9, seed=d) for d in range(30)]
    naive = [crossfit(v, n_boot=20) for v in draws]
    mixture = [mixture_transfer(v, n_perm=499, n_boot=20) for v in draws]
    assert np.mean([row["naive_r"] for row in naive]) > 0.8  # persistence of models, not of mixtures
    assert np.mean([row["naive_p"] < 0.05 for row in naive]) > 0.7  # the naive test "finds" transfer
    rejections = np.mean([row["mixture_p"] < 0.05 for row in mixture])
    assert rejections <= 0.1


def test_planted_transfer_is_recovered_within_the_intervals():
    # one seed, no seed noise: the item-corrected r targets the mixture r (0.6); with seeds, so does r_mix
    v = item_cube(n_seeds=1, n_items=100, sd_mixture=1.0, rho_mixture=0.6, sd_item=2.0, seed=0)
    row = crossfit(v, n_boot=400)
    assert row["corrected_low"] <= 0.6 <= row["corrected_high"]
    assert row["naive_r"] > row["split_r"]  # shared item noise inflates the naive r
    assert 0 < row["ceiling"] < 1
    v = item_cube(n_seeds=3, n_items=100, sd_mixture=1.0, rho_mixture=0.6, sd_seed=0.5, sd_item=2.0, seed=0)
    row = mixture_transfer(v, n_perm=999, n_boot=400)
    assert row["mixture_low"] <= 0.6 <= row["mixture_high"]
    assert row["mixture_p"] < 0.05


def test_continuous_metric_carries_the_planted_cube():
    items = make_items(benchmarks=("arc_easy",), seeds=(0, 1), n_items=8, seed=2, sd_mixture=1.0)
    (cube,) = cubes(per_item(items), ["gold_ll_char"])
    d = item_cube(9, 2, 8, sd_mixture=1.0, seed=np.random.default_rng(2))
    assert np.allclose(cube.values, -2 + d[..., np.argsort([str(i) for i in range(8)])] / 10)
    assert cube.seeds == (0, 1) and len(cube.mixtures) == 9


def test_audit_verdicts_and_planning():
    items = make_items(benchmarks=("hellaswag", "arc_easy"), seeds=(0, 1, 2), n_items=40, seed=0,
                       sd_mixture=1.0, rho_mixture=0.9, sd_seed=0.3, sd_item=1.5)
    items = pd.concat([items, make_items(benchmarks=("piqa",), n_items=40, seed=5, sd_mixture=0.0, sd_seed=1.0)])
    audit = transfer_audit(items, ["gold_ll_char", "accuracy"], n_boot=50, n_perm=499)
    assert set(audit["verdict"]) <= set(VERDICTS)
    by = audit.set_index(["benchmark", "metric"])
    assert by.loc[("piqa", "gold_ll_char"), "verdict"] == "not measurable at this scale"
    assert by.loc[("hellaswag", "gold_ll_char"), "verdict"] == "rankings persist"
    assert (audit["noise_floor"] == "items and seeds").all()
    plan = planning_table(audit)
    assert list(plan["metric"]) == ["gold_ll_char", "accuracy"]
    assert plan.loc[0, "measurable"] == 2


def test_items_needed_grows_as_the_signal_shrinks():
    strong, weak = items_needed(30.0, 5.0, 50, 9), items_needed(7.0, 5.0, 50, 9)
    assert strong < 50 < weak
    assert np.isnan(items_needed(4.0, 5.0, 50, 9))  # no mixture variance measured: no finite answer


def test_holm_matches_statsmodels():
    table = pd.DataFrame({"g": list("aaaabbb"), "p": [0.01, 0.04, np.nan, 0.03, 0.2, 0.001, 0.5]})
    ours = holm(table, "p", ["g"])
    for _, group in table.groupby("g"):
        tested = group["p"].dropna()
        assert np.allclose(ours[tested.index], multipletests(tested, method="holm")[1])
    assert np.isnan(ours[2])


def test_magic_analyse_on_a_hand_written_csv(tmp_path, capsys):
    items = make_items(benchmarks=("copa",), seeds=(0, 1), n_items=8, n_choices=2, seed=1)
    items = items[["mixture", "scale", "stage", "seed", "benchmark", "item", "choice", "loglik", "n_chars",
                   "n_tokens", "gold"]]
    path = tmp_path / "mine.csv"
    items.to_csv(path, index=False)
    assert read_items(path).shape == items.shape
    assert cli.main(["analyse", "--items", str(path), "--out", str(tmp_path / "out")]) == 0
    transfer = pd.read_csv(tmp_path / "out" / "transfer.csv")
    assert {"naive_r", "split_r", "reliability_pt", "ceiling", "corrected_r", "mixture_r", "mixture_p",
            "verdict"} <= set(transfer.columns)
    assert len(transfer) == 7  # one benchmark, one scale, every item metric
    assert (tmp_path / "out" / "planning.csv").exists()
    items.rename(columns={"n_tokens": "tokens"}).to_csv(path, index=False)
    assert cli.main(["analyse", "--items", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lacks column(s) ['n_tokens']" in err and "unknown column(s) ['tokens']" in err
    items.assign(extra=1).to_csv(path, index=False)
    assert cli.main(["analyse", "--items", str(path)]) == 1
    assert "unknown column(s) ['extra']" in capsys.readouterr().err


def test_a_missing_run_is_named():
    items = make_items(benchmarks=("copa",), seeds=(0, 1), n_items=6, n_choices=2, seed=1)
    hole = (items["mixture"] == "V2-P1") & (items["seed"] == 1) & (items["stage"] == "SFT")
    with pytest.raises(ValueError, match="lack some items.*V2-P1"):
        list(cubes(per_item(items[~hole]), ["accuracy"]))


def test_mixtures_that_all_score_the_same_have_no_signal_and_no_reliability():
    values = np.zeros((2, 9, 2, 8))
    values[..., :4] = 1.0  # every model right on the same 4 items: accuracy ties across mixtures
    row = crossfit(values, n_boot=20) | mixture_transfer(values, n_perm=99, n_boot=20)
    assert np.isnan(row["reliability_pt"]) and np.isnan(row["signal_p_pt"]) and np.isnan(row["corrected_r"])
    assert np.isnan(row["mixture_r"])
