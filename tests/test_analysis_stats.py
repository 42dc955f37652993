"""Correlations, exact permutation p-values and intervals (magiclib.analysis.stats)."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from magiclib.analysis import stats

NINE_FACTORIAL = math.factorial(9)


def _scipy_statistic(method, y):
    """scipy's own statistic for corr(x, y) with y fixed, vectorised over x, for permutation_test."""
    if method == "pearson":
        return lambda x, axis=-1: sps.pearsonr(x, np.broadcast_to(y, x.shape), axis=axis).statistic
    if method == "spearman":
        return lambda x, axis=-1: (
            sps.pearsonr(
                sps.rankdata(x, axis=axis), np.broadcast_to(sps.rankdata(y), x.shape), axis=axis
            ).statistic
        )
    return lambda x, axis=-1: np.apply_along_axis(lambda row: sps.kendalltau(row, y).statistic, axis, x)


@pytest.mark.parametrize("method", stats.METHODS)
def test_correlation_matches_scipy_with_and_without_ties(method):
    rng = np.random.default_rng(0)
    reference = {"pearson": sps.pearsonr, "spearman": sps.spearmanr, "kendall": sps.kendalltau}[method]
    for x, y in [
        (rng.normal(size=9), rng.normal(size=9)),
        (rng.integers(0, 4, 9).astype(float), rng.integers(0, 3, 9).astype(float)),
    ]:
        assert stats.correlation(x, y, method) == pytest.approx(reference(x, y).statistic, abs=1e-12)


def test_constant_vector_has_no_correlation():
    assert np.isnan(stats.correlation(np.ones(9), np.arange(9.0)))
    result = stats.correlate(np.ones(9), np.arange(9.0), n_boot=99)
    assert np.isnan(result["r"]) and np.isnan(result["p"])


@pytest.mark.parametrize("method", stats.METHODS)
def test_planted_perfect_transfer_reaches_the_exact_minimum_p(method):
    # x**2 is not symmetric about its mean, so for Pearson the reversed pairing does not give r = -1:
    # the two-sided minimum 2/9! comes from doubling the one-sided 1/9! (scipy's convention).
    x = np.arange(9.0) ** 2
    result = stats.correlate(x, 0.5 * x + 0.3, method, n_boot=199)
    assert result["r"] == pytest.approx(1.0)
    assert result["p"] == pytest.approx(2 / NINE_FACTORIAL, rel=1e-12)
    assert stats.permutation_pvalue(x, 0.5 * x + 0.3, method, "greater") == pytest.approx(1 / NINE_FACTORIAL)
    assert stats.permutation_pvalue(x, -x, method, "less") == pytest.approx(1 / NINE_FACTORIAL)
    # An interval around r = 1 would be [1, 1] (every resample repeats r, atanh(1) is infinite): undefined.
    assert np.isnan(result["ci_low"]) and np.isnan(result["ci_high"]) and not result["ci_reliable"]
    assert np.isnan(result["fisher_low"]) and np.isnan(result["boot_low"])


@pytest.mark.parametrize("method", stats.METHODS)
@pytest.mark.parametrize("alternative", stats.ALTERNATIVES)
def test_permutation_p_matches_scipy_permutation_test(method, alternative):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=6), rng.normal(size=6)  # 720 pairings keep scipy's Kendall loop quick
    y[:3] = y[0]  # ties in y exercise the rank statistics' tie handling
    x = x + 0.8 * y
    expected = sps.permutation_test(
        (x,),
        _scipy_statistic(method, y),
        permutation_type="pairings",
        vectorized=True,
        n_resamples=np.inf,
        alternative=alternative,
    ).pvalue
    assert stats.permutation_pvalue(x, y, method, alternative) == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_permutation_p_matches_scipy_over_all_nine_factorial_pairings():
    rng = np.random.default_rng(2)
    x = rng.normal(size=9)
    y = 0.5 * x + rng.normal(size=9)
    expected = sps.permutation_test(
        (x,), _scipy_statistic("pearson", y), permutation_type="pairings", vectorized=True, n_resamples=np.inf
    ).pvalue
    assert stats.permutation_pvalue(x, y) == pytest.approx(expected, rel=1e-9)


def test_above_nine_points_the_p_value_is_a_seeded_monte_carlo_estimate():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = 0.4 * x + rng.normal(size=12)
    first = stats.permutation_pvalue(x, y, n_perm_mc=9_999)
    assert first == stats.permutation_pvalue(x, y, n_perm_mc=9_999)
    assert first == pytest.approx(sps.pearsonr(x, y).pvalue, abs=0.02)
    assert (
        stats.permutation_pvalue(np.arange(12.0), np.arange(12.0), n_perm_mc=999, alternative="greater")
        == 1 / 1000
    )


def test_degenerate_bootstrap_resamples_are_dropped_and_counted():
    x = np.r_[np.zeros(8), 1.0]  # a resample without the last mixture has a constant x
    y = np.arange(9.0)
    low, high, dropped = stats.bootstrap_ci(x, y, n_boot=999, seed=5)
    indices = stats.bootstrap_indices(9, 999, 5)
    assert dropped == np.count_nonzero((indices != 8).all(axis=1))
    assert 0 < dropped < 999 / 2 and low <= high
    assert np.isnan(stats.percentile_interval(np.r_[np.full(6, np.nan), np.ones(4)])[0])


def test_heavily_tied_vectors_get_an_unreliable_interval():
    # The audit's case: 8 of 9 values tied. The exact p is 6/9, yet dropping the resamples without the
    # untied mixture (a third of them) leaves a percentile interval that excludes 0.
    x = np.r_[np.zeros(8), 1.0]
    y = np.array([0.1, 0.5, 0.2, 0.9, 0.3, 0.7, 0.4, 0.8, 0.75])
    for method in stats.METHODS:
        result = stats.correlate(x, y, method, n_boot=999)
        assert result["p"] == pytest.approx(6 / 9)
        assert result["boot_low"] > 0 or method != "pearson"
        assert not result["ci_reliable"]
        assert result["boot_degenerate"] > stats.MAX_DEGENERATE_SHARE * 999
    # Five tied values stay below the threshold ((5/9)^9 = 0.5% of resamples degenerate).
    five_tied = stats.correlate(np.r_[np.zeros(5), 1.0, 2.0, 3.0, 4.0], y, n_boot=999)
    assert five_tied["ci_reliable"]
    mean = stats.mean_correlation(np.stack([x, y]), np.stack([y, x + y]), n_boot=999)
    assert not mean["ci_reliable"]
    assert stats.mean_correlation(np.stack([y, y**2]), np.stack([y**3, y]), n_boot=999)["ci_reliable"]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_an_interval_around_a_perfect_correlation_is_undefined_not_a_point(sign):
    x = np.r_[np.zeros(7), 1.0, 2.0]  # ties too: r = +-1 happens with tied accuracy vectors
    for method in stats.METHODS:
        result = stats.correlate(x, sign * x, method, n_boot=199)
        assert result["r"] == pytest.approx(sign)
        assert np.isnan([result["ci_low"], result["ci_high"], result["fisher_low"], result["boot_high"]]).all()
        assert not result["ci_reliable"]
    assert np.isnan(stats.fisher_ci(-1.0, 9)).all()
    mean = stats.mean_correlation(np.stack([x, x + x**2]), sign * np.stack([x, x + x**2]), n_boot=199)
    assert mean["mean_r"] == pytest.approx(sign) and np.isnan(mean["ci_low"]) and not mean["ci_reliable"]


def test_fisher_interval_uses_the_method_standard_error():
    low, high = stats.fisher_ci(0.5, 9, "pearson")
    half = sps.norm.ppf(0.975) / math.sqrt(6)
    assert (low, high) == pytest.approx(
        (math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half))
    )
    spearman = stats.fisher_ci(0.5, 9, "spearman")
    assert spearman[0] < low and spearman[1] > high


def test_correlate_is_deterministic_and_reports_every_field():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=9), rng.normal(size=9)
    first = stats.correlate(x, y, "kendall", n_boot=199)
    assert first == stats.correlate(x, y, "kendall", n_boot=199)
    assert set(first) == {
        "method",
        "n",
        "r",
        "p",
        "ci_low",
        "ci_high",
        "ci_method",
        "ci_reliable",
        "fisher_low",
        "fisher_high",
        "boot_low",
        "boot_high",
        "boot_degenerate",
    }
    # Kendall reports its percentile bootstrap; Pearson its Fisher-z interval (chosen by measured coverage).
    assert (first["ci_low"], first["ci_high"]) == (first["boot_low"], first["boot_high"])
    pearson = stats.correlate(x, y, "pearson", n_boot=199)
    assert (pearson["ci_low"], pearson["ci_high"]) == (pearson["fisher_low"], pearson["fisher_high"])
    assert pearson["ci_method"] == "fisher-z" and pearson["ci_reliable"]
    assert all(np.isnan(v) for k, v in stats.correlate(x[:2], y[:2]).items() if k in ("r", "p", "ci_low"))


def test_mean_correlation_of_one_row_is_the_correlation_and_joint_permutation_is_exact():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=9), rng.normal(size=9)
    single = stats.mean_correlation(x, y, n_boot=199)
    assert single["mean_r"] == pytest.approx(stats.correlate(x, y, n_boot=199)["r"])
    assert single["p"] == pytest.approx(stats.permutation_pvalue(x, y))
    rows = rng.normal(size=(3, 9))
    planted = stats.mean_correlation(rows, 2 * rows + 1, "kendall", n_boot=199)
    assert planted["mean_r"] == pytest.approx(1.0) and planted["p"] == pytest.approx(2 / NINE_FACTORIAL)
    assert planted["n_rows"] == 3


@pytest.mark.parametrize(
    ("x", "y", "method", "message"),
    [
        (np.arange(9.0), np.arange(8.0), "pearson", "same length"),
        (np.r_[np.arange(8.0), np.nan], np.arange(9.0), "pearson", "finite"),
        (np.arange(9.0), np.arange(9.0), "cosine", "unknown correlation method"),
    ],
)
def test_bad_input_gets_a_clear_error(x, y, method, message):
    with pytest.raises(ValueError, match=message):
        stats.correlate(x, y, method)


def test_the_pearson_interval_covers_near_its_level_at_nine_mixtures():
    # The audit: the percentile bootstrap covered 84-92% at n = 9. Fixed seed, so this cannot flake;
    # bench/analysis_intervals.py measures it over 1000 draws per row.
    rng = np.random.default_rng(11)
    rho, hits, boot_hits = 0.5, 0, 0
    draws = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=(200, 9))
    for x, y in zip(draws[..., 0], draws[..., 1], strict=True):
        low, high = stats.fisher_ci(float(stats.correlation(x, y)), 9)
        boot_low, boot_high, _ = stats.bootstrap_ci(x, y, n_boot=499)
        hits += low <= rho <= high
        boot_hits += boot_low <= rho <= boot_high
    assert 0.92 <= hits / 200 <= 0.98 and boot_hits < hits
    x, y = draws[0, :, 0], draws[0, :, 1]
    result = stats.correlate(x, y, n_boot=99)
    assert (result["ci_low"], result["ci_high"]) == stats.fisher_ci(result["r"], 9)
