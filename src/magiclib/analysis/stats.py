"""Correlations across nine mixtures, with the uncertainty that n = 9 deserves.

The paper reports bare Pearson coefficients. With 9 mixtures a correlation needs |r| >= 0.666 to reach
p < .05, so every coefficient here comes with:

- a permutation p-value: all n! pairings of x with y for n <= 9 (9! = 362,880), vectorised; a fixed-
  seed Monte Carlo sample of pairings above that, with scipy's (count + 1) / (R + 1) estimate. Two-sided
  p = min(1, 2 * min(p_greater, p_less)), the convention of `scipy.stats.permutation_test`, so a perfect
  transfer (all values distinct) has p_greater = 1/9! and a two-sided p of 2/9!. The test is exact for
  the null of *independence* (every pairing equally likely), not for rho = 0: x and y can be uncorrelated
  yet dependent (a shared heavy-tailed scale, say), and then its level is not guaranteed
  (bench/analysis_intervals.py measures it);
- an interval, `ci_low`/`ci_high`, chosen by its measured coverage at n = 9 (bench/analysis_intervals.py,
  bench/README.md): for Pearson the Fisher-z interval tanh(atanh(r) +- z / sqrt(n - 3)), which covers
  94-96% for normal and for tied 50-item binomial scores, where the percentile bootstrap covered
  87.6-92.3%; for Spearman and Kendall the percentile bootstrap over mixtures, which covers 94-98%
  (Fisher z with Fieller's variances covers Kendall only 83% near tau = 0.8). `ci_method` names it. No
  interval covers at its level under heavy tails with 9 points (t with 3 df: Fisher z 84-85%, percentile
  87-89%, BCa 90-92%);
- `ci_reliable`, False where the interval should not be read: an observed |r| = 1 (every resample repeats
  it and atanh(r) is infinite, so any interval would be [1, 1]; it is left undefined, NaN, and the
  p-value is the statistic to read), or heavily tied vectors, where more than `MAX_DEGENERATE_SHARE` of
  the bootstrap resamples have a constant x or y. Dropping those resamples conditions on the resample
  containing the few untied values, which pushes the interval away from 0 (8 of 9 values tied: exact
  p = 0.67 but a percentile interval of [0.08, 0.87]); with more than half dropped the interval is NaN;
- the Fisher-z interval and the percentile bootstrap interval (`boot_low`/`boot_high`, pairs resampled
  together, fixed seed; `boot_degenerate` resamples dropped) side by side, whichever `ci_*` is (standard
  errors of Fisher z: Pearson 1/sqrt(n-3); Spearman sqrt(1.06/(n-3)) and Kendall sqrt(0.437/(n-4)),
  Fieller, Hartley and Pearson 1957).

Pearson, Spearman (Pearson on average ranks) and Kendall's tau-b are computed by one vectorised
`correlation` along the last axis, so observed, bootstrap and permutation values use the same code.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings

import numpy as np
from scipy import stats as sps

from ..errors import BadValue

METHODS = ("pearson", "spearman", "kendall")
ALTERNATIVES = ("two-sided", "greater", "less")
EXACT_MAX_N = 9  # enumerate all n! pairings up to here (9! = 362,880)
N_PERM_MC = 99_999  # random pairings above EXACT_MAX_N
N_BOOT = 9_999
LEVEL = 0.95
# Above this share of degenerate resamples (constant x or y) an interval is flagged unreliable; at n = 9 it
# is reached when 6 of the 9 values of x or y are tied ((6/9)^9 = 2.6%; 5 tied give 0.5%).
MAX_DEGENERATE_SHARE = 0.01
# The interval each method reports as ci_low/ci_high (chosen by measured coverage; see the module text).
CI_METHODS = {"pearson": "fisher-z", "spearman": "percentile bootstrap", "kendall": "percentile bootstrap"}
SEED = 0
# Two statistics closer than this count as equal when compared with the observed one (scipy uses a
# relative 1e-14; ours are computed in two summation orders, so allow more).
_TIE_TOLERANCE = 1e-9
_FISHER_VARIANCE = {"pearson": (1.0, 3), "spearman": (1.06, 3), "kendall": (0.437, 4)}


def check_method(method: str) -> None:
    if method not in METHODS:
        raise BadValue(f"unknown correlation method {method!r}; use one of {list(METHODS)}")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise BadValue(f"unknown alternative {alternative!r}; use one of {list(ALTERNATIVES)}")


def _vectors(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise BadValue(f"x and y must be 1-D and the same length; got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise BadValue("x and y must be finite; drop or impute NaN/inf values first")
    return x, y


def correlation(x, y, method: str = "pearson") -> np.ndarray:
    """The correlation of x and y along their last axis (broadcast); NaN where x or y is constant."""
    check_method(method)
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    constant = (x.max(-1) == x.min(-1)) | (y.max(-1) == y.min(-1))
    if method == "spearman":
        x, y = sps.rankdata(x, axis=-1), sps.rankdata(y, axis=-1)
    if method == "kendall":
        i, j = np.triu_indices(x.shape[-1], 1)
        sign_x, sign_y = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
        numerator = (sign_x * sign_y).sum(-1)
        denominator = np.sqrt(np.abs(sign_x).sum(-1) * np.abs(sign_y).sum(-1))
    else:
        xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
        numerator = (xc * yc).sum(-1)
        denominator = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(numerator / denominator, -1.0, 1.0)
    return np.where(constant, np.nan, r)


def pairings(n: int, n_random: int = N_PERM_MC, seed: int = SEED) -> tuple[np.ndarray, bool]:
    """Orders in which to pair x with y: all n! for n <= EXACT_MAX_N (exact), else n_random at random.

    Returns (array of shape (count, n), exact). Cached, read-only and column-major (each position's
    values contiguous, which keeps the per-position gathers of `permutation_null` fast).
    """
    if n <= EXACT_MAX_N:
        return _all_orders(n), True
    return _random_orders(n, n_random, seed), False


@functools.cache
def _all_orders(n: int) -> np.ndarray:
    table = np.asfortranarray(list(itertools.permutations(range(n))), dtype=np.intp)
    table.flags.writeable = False
    return table


@functools.cache
def _random_orders(n: int, count: int, seed: int) -> np.ndarray:
    table = np.asfortranarray(np.random.default_rng(seed).permuted(np.tile(np.arange(n), (count, 1)), axis=1))
    table.flags.writeable = False
    return table


def permutation_null(xs, ys, method: str, orders: np.ndarray) -> np.ndarray:
    """For every order in `orders`, the mean over rows b of corr(xs[b][order], ys[b]).

    One row gives the plain permutation null of corr(x, y); several rows give the joint null of a mean
    correlation (one pairing applied to every row). Each statistic is a numerator that depends on the
    pairing over a denominator that does not, and the numerators of all rows fold into one weight table
    indexed by (position, value moved there), so the cost does not grow with the number of rows.
    """
    xs, ys = np.atleast_2d(np.asarray(xs, dtype=float)), np.atleast_2d(np.asarray(ys, dtype=float))
    n_rows, n = xs.shape
    if method == "spearman":
        xs, ys = sps.rankdata(xs, axis=-1), sps.rankdata(ys, axis=-1)
    if method == "kendall":
        i, j = np.triu_indices(n, 1)
        sign_x = np.sign(xs[:, :, None] - xs[:, None, :])  # (row, value a, value c)
        sign_y = np.sign(ys[:, i] - ys[:, j])  # (row, position pair)
        denominator = np.sqrt(np.count_nonzero(sign_x[:, i, j], axis=1) * np.count_nonzero(sign_y, axis=1))
        if (denominator == 0).any():
            return np.full(len(orders), np.nan)
        weights = np.einsum("bp,bac->pac", sign_y / denominator[:, None], sign_x).reshape(len(i), n * n)
        null = sum(
            weights[pair].take(orders[:, a] * n + orders[:, c])
            for pair, (a, c) in enumerate(zip(i, j, strict=True))
        )
    else:
        xc, yc = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
        denominator = np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))
        if (denominator == 0).any():
            return np.full(len(orders), np.nan)
        weights = np.einsum("bi,ba->ia", yc / denominator[:, None], xc)
        null = sum(weights[position].take(orders[:, position]) for position in range(n))
    return null / n_rows


@functools.lru_cache(maxsize=16)
def _rank_null(method: str, x_sorted: tuple, y_sorted: tuple, n_random: int, seed: int) -> np.ndarray:
    # The permutation distribution of a rank statistic depends only on the multisets of ranks (pairing
    # x[order] with y over all orders is the same whatever order x and y came in), so one cached null
    # serves every untied vector of the same length.
    orders, _ = pairings(len(x_sorted), n_random, seed)
    null = permutation_null(np.array(x_sorted), np.array(y_sorted), method, orders)
    null.flags.writeable = False
    return null


def p_from_null(
    null: np.ndarray, observed: float, alternative: str = "two-sided", exact: bool = True
) -> float:
    """Share of the null at least as extreme as `observed` (scipy's conventions; see the module text)."""
    _check_alternative(alternative)
    if not np.isfinite(observed):
        return float("nan")
    tolerance = _TIE_TOLERANCE * max(1.0, abs(observed))
    greater = np.count_nonzero(null >= observed - tolerance)
    less = np.count_nonzero(null <= observed + tolerance)
    extra = 0 if exact else 1
    p_greater, p_less = (greater + extra) / (len(null) + extra), (less + extra) / (len(null) + extra)
    if alternative == "greater":
        return float(p_greater)
    if alternative == "less":
        return float(p_less)
    return float(min(1.0, 2 * min(p_greater, p_less)))


def permutation_pvalue(
    x,
    y,
    method: str = "pearson",
    alternative: str = "two-sided",
    *,
    n_perm_mc: int = N_PERM_MC,
    seed: int = SEED,
) -> float:
    """Permutation p-value of corr(x, y): all n! pairings for n <= 9, else Monte Carlo.

    Exact for H0 "x and y are independent" (every pairing equally likely), not for H0 "rho = 0": with
    uncorrelated but dependent x and y (heavy tails sharing a scale) its level can differ from alpha.
    """
    check_method(method)
    x, y = _vectors(x, y)
    observed = float(correlation(x, y, method))
    orders, exact = pairings(len(x), n_perm_mc, seed)
    if method == "pearson":
        null = permutation_null(x, y, method, orders)
    else:
        null = _rank_null(
            method, tuple(np.sort(sps.rankdata(x))), tuple(np.sort(sps.rankdata(y))), n_perm_mc, seed
        )
    return p_from_null(null, observed, alternative, exact)


@functools.cache
def bootstrap_indices(n: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Resampled mixture indices, shape (n_boot, n); the same for every call with the same arguments.

    Sharing one set of resamples across benchmarks makes intervals of means and differences coherent.
    """
    indices = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    indices.flags.writeable = False
    return indices


def percentile_interval(samples, level: float = LEVEL) -> tuple[float, float, int]:
    """(low, high, n_dropped): the percentile interval of the finite bootstrap samples.

    NaN samples (degenerate resamples) are dropped and counted; above half dropped the interval is NaN.
    """
    samples = np.asarray(samples, dtype=float).ravel()
    finite = samples[np.isfinite(samples)]
    dropped = samples.size - finite.size
    if finite.size == 0 or dropped > samples.size / 2:
        return float("nan"), float("nan"), dropped
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), dropped


def bootstrap_ci(
    x, y, method: str = "pearson", *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED
) -> tuple[float, float, int]:
    """Percentile bootstrap interval of corr(x, y) over resampled (x_i, y_i) pairs: (low, high, n_dropped)."""
    x, y = _vectors(x, y)
    indices = bootstrap_indices(len(x), n_boot, seed)
    return percentile_interval(correlation(x[indices], y[indices], method), level)


def fisher_ci(r: float, n: int, method: str = "pearson", level: float = LEVEL) -> tuple[float, float]:
    """Fisher-z interval tanh(atanh(r) +- z * se); NaN for |r| = 1, where atanh is infinite (see the module
    text), and for n too small for the method's standard error."""
    check_method(method)
    factor, offset = _FISHER_VARIANCE[method]
    if n <= offset or not np.isfinite(r) or abs(r) >= 1:
        return float("nan"), float("nan")
    half_width = sps.norm.ppf((1 + level) / 2) * math.sqrt(factor / (n - offset))
    center = np.arctanh(r)
    return float(np.tanh(center - half_width)), float(np.tanh(center + half_width))


def interval_reliable(estimate: float, low: float, high: float, degenerate: int, n_boot: int) -> bool:
    """Whether an interval can be read: finite, around |estimate| < 1, from vectors not heavily tied (at
    most MAX_DEGENERATE_SHARE of `n_boot` resamples degenerate). See the module text for why."""
    return bool(
        np.isfinite(low)
        and np.isfinite(high)
        and abs(estimate) < 1
        and degenerate <= MAX_DEGENERATE_SHARE * n_boot
    )


def correlate(
    x,
    y,
    method: str = "pearson",
    *,
    alternative: str = "two-sided",
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
    n_perm_mc: int = N_PERM_MC,
) -> dict:
    """corr(x, y) with its permutation p-value, its interval and the two candidate intervals beside it.

    The paper reported r alone. Returns a dict (one row of a results table): method, n, r, p, ci_low,
    ci_high (the interval `CI_METHODS` names for `method`), ci_method, ci_reliable, fisher_low,
    fisher_high, boot_low, boot_high (percentile bootstrap), boot_degenerate. With fewer than 3 points
    every statistic is NaN; with a constant x or y, r and p are NaN; with |r| = 1 the intervals are NaN.
    """
    check_method(method)
    _check_alternative(alternative)
    x, y = _vectors(x, y)
    row = {"method": method, "n": len(x)}
    nan = float("nan")
    if len(x) < 3:
        return row | {
            "r": nan,
            "p": nan,
            "ci_low": nan,
            "ci_high": nan,
            "ci_method": CI_METHODS[method],
            "ci_reliable": False,
            "fisher_low": nan,
            "fisher_high": nan,
            "boot_low": nan,
            "boot_high": nan,
            "boot_degenerate": 0,
        }
    r = float(correlation(x, y, method))
    boot_low, boot_high, dropped = bootstrap_ci(x, y, method, n_boot=n_boot, level=level, seed=seed)
    if not abs(r) < 1:  # every resample repeats |r| = 1: [1, 1] would claim certainty
        boot_low, boot_high = nan, nan
    fisher_low, fisher_high = fisher_ci(r, len(x), method, level)
    low, high = (fisher_low, fisher_high) if CI_METHODS[method] == "fisher-z" else (boot_low, boot_high)
    return row | {
        "r": r,
        "p": permutation_pvalue(x, y, method, alternative, n_perm_mc=n_perm_mc, seed=seed),
        "ci_low": low,
        "ci_high": high,
        "ci_method": CI_METHODS[method],
        "ci_reliable": interval_reliable(r, low, high, dropped, n_boot),
        "fisher_low": fisher_low,
        "fisher_high": fisher_high,
        "boot_low": boot_low,
        "boot_high": boot_high,
        "boot_degenerate": dropped,
    }


def mean_correlation(
    xs,
    ys,
    method: str = "pearson",
    *,
    alternative: str = "two-sided",
    permutation_p: bool = True,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
    n_perm_mc: int = N_PERM_MC,
) -> dict:
    """The mean of corr(xs[b], ys[b]) over rows b (e.g. a category's benchmarks), with a CI and a p-value.

    The paper averaged per-benchmark r within a category. The interval resamples mixtures (the same
    resample for every row, so the dependence between benchmarks scored on the same models is kept);
    the p-value applies one pairing of mixtures to every row at once (a joint permutation test of the
    mean). Rows whose x or y is constant are left out of the mean. The interval is a percentile
    bootstrap (there is no Fisher z for a mean of dependent coefficients); `ci_reliable` is False when it is
    NaN, when the mean is +-1, or when more than MAX_DEGENERATE_SHARE of the rows' resamples are degenerate
    (heavily tied rows; see the module text). Returns a dict: method, n, n_rows, mean_r, p, ci_low,
    ci_high, ci_method, ci_reliable, boot_degenerate (resamples where every row was degenerate).
    """
    check_method(method)
    xs, ys = np.atleast_2d(np.asarray(xs, dtype=float)), np.atleast_2d(np.asarray(ys, dtype=float))
    if xs.shape != ys.shape:
        raise BadValue(
            f"xs and ys must have the same shape (rows x mixtures); got {xs.shape} and {ys.shape}"
        )
    n = xs.shape[1]
    row = {"method": method, "n": n, "n_rows": xs.shape[0]}
    rs = correlation(xs, ys, method)
    if n < 3 or np.isnan(rs).all():
        nan = float("nan")
        return row | {"mean_r": nan, "p": nan, "ci_low": nan, "ci_high": nan,
                      "ci_method": "percentile bootstrap", "ci_reliable": False, "boot_degenerate": 0}
    observed = float(np.nanmean(rs))
    indices = bootstrap_indices(n, n_boot, seed)
    valid = ~np.isnan(rs)
    resampled = correlation(xs[valid][:, indices], ys[valid][:, indices], method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples where every row is degenerate: counted
        boot = np.nanmean(resampled, axis=0)
    low, high, dropped = percentile_interval(boot, level)
    if not abs(observed) < 1:  # every resample repeats it: no interval (see correlate)
        low, high = float("nan"), float("nan")
    degenerate_share = float(np.isnan(resampled).mean())
    p = float("nan")
    if permutation_p:
        orders, exact = pairings(n, n_perm_mc, seed)
        p = p_from_null(permutation_null(xs[valid], ys[valid], method, orders), observed, alternative, exact)
    reliable = interval_reliable(observed, low, high, round(degenerate_share * n_boot), n_boot)
    return row | {
        "mean_r": observed,
        "p": p,
        "ci_low": low,
        "ci_high": high,
        "ci_method": "percentile bootstrap",
        "ci_reliable": reliable,
        "boot_degenerate": dropped,
    }
