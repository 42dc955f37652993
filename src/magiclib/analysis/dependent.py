"""Comparing two correlations measured on the same mixtures (dependent correlations).

A scale difference compares r_small = corr(PT_s, SFT_s) with r_large = corr(PT_l, SFT_l), both across the
same nine mixtures, so the two coefficients are correlated and a test for independent samples is wrong.
The analysis treats them with a paired bootstrap over mixtures (see `scale.py`); this module gives the
classic large-sample references, which work from the correlation matrix of the variables involved:

- Steiger's (1980) Z: Fisher-z difference over a standard error that uses the Pearson-Filon covariance
  of the two coefficients, with the two compared correlations replaced by their mean (his eqs. 12-15);
- Zou's (2007) interval for r1 - r2, built from the two Fisher-z intervals and the same covariance
  evaluated at the sample values.

Both cover the overlapping case (one shared variable, e.g. r_jk vs r_jh) and the non-overlapping case
(r_jk vs r_hm), as the R package cocor does.

`mean_steiger_z` extends Steiger's Z to the mean of several such differences (a category's benchmarks,
all scored on the same mixtures): the Fisher-z differences are averaged and their variance sums the
Pearson-Filon covariances of every pair of coefficients involved, each compared pair pooled to its mean
under the null as Steiger does. With one pair it is Steiger's Z. Its type-I error at n = 9 is measured in
bench/analysis_intervals.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ..errors import BadValue


def pearson_filon_covariance(R: np.ndarray, first: tuple[int, int], second: tuple[int, int]) -> float:
    """n * cov(r_jk, r_hm) for first = (j, k), second = (h, m), from the correlation matrix R.

    The Pearson-Filon (1898) formula in Steiger's (1980, eq. 3) form; indices may be shared (overlap),
    in which case R's unit diagonal supplies the correlations of a variable with itself.
    """
    j, k = first
    h, m = second
    r = lambda a, b: R[a, b]  # noqa: E731  (keeps the formula readable)
    return (
        0.5 * r(j, k) * r(h, m) * (r(j, h) ** 2 + r(j, m) ** 2 + r(k, h) ** 2 + r(k, m) ** 2)
        + r(j, h) * r(k, m)
        + r(j, m) * r(k, h)
        - (
            r(j, k) * r(j, h) * r(j, m)
            + r(j, k) * r(k, h) * r(k, m)
            + r(j, h) * r(k, h) * r(h, m)
            + r(j, m) * r(k, m) * r(h, m)
        )
    )


def _check(R: np.ndarray, first: tuple[int, int], second: tuple[int, int], n: int) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or not np.allclose(np.diag(R), 1) or not np.allclose(R, R.T):
        raise BadValue("R must be a square, symmetric correlation matrix with ones on the diagonal")
    if len(set(first)) != 2 or len(set(second)) != 2 or set(first) == set(second):
        raise BadValue(
            f"compare two different correlations, each of two different variables; got {first}, {second}"
        )
    if n <= 3:
        raise BadValue(f"n = {n}: dependent-correlation tests need more than 3 observations")
    return R


def steiger_z(R, first: tuple[int, int], second: tuple[int, int], n: int) -> tuple[float, float]:
    """Steiger's (1980) Z for H0: rho_first = rho_second on one sample of size n; returns (z, two-sided p)."""
    R = _check(R, first, second, n)
    r1, r2 = R[first], R[second]
    pooled = R.copy()
    mean = (r1 + r2) / 2
    for a, b in (first, second):
        pooled[a, b] = pooled[b, a] = mean
    covariance = pearson_filon_covariance(pooled, first, second) / (1 - mean**2) ** 2
    z = (np.arctanh(r1) - np.arctanh(r2)) * math.sqrt(n - 3) / math.sqrt(2 - 2 * covariance)
    return float(z), float(2 * sps.norm.sf(abs(z)))


def zou_interval(
    R, first: tuple[int, int], second: tuple[int, int], n: int, level: float = 0.95
) -> tuple[float, float]:
    """Zou's (2007) confidence interval for rho_first - rho_second on one sample of size n."""
    R = _check(R, first, second, n)
    r1, r2 = R[first], R[second]
    half_width = sps.norm.ppf((1 + level) / 2) / math.sqrt(n - 3)
    low1, high1 = np.tanh(np.arctanh(r1) - half_width), np.tanh(np.arctanh(r1) + half_width)
    low2, high2 = np.tanh(np.arctanh(r2) - half_width), np.tanh(np.arctanh(r2) + half_width)
    c = pearson_filon_covariance(R, first, second) / ((1 - r1**2) * (1 - r2**2))
    low = r1 - r2 - math.sqrt((r1 - low1) ** 2 + (high2 - r2) ** 2 - 2 * c * (r1 - low1) * (high2 - r2))
    high = r1 - r2 + math.sqrt((high1 - r1) ** 2 + (r2 - low2) ** 2 - 2 * c * (high1 - r1) * (r2 - low2))
    return float(low), float(high)


def mean_steiger_z(before, after) -> tuple[float, float]:
    """Z and two-sided p for H0: mean_b rho(after[b]) = mean_b rho(before[b]), on one sample of mixtures.

    `before` and `after` are pairs (x, y) of arrays of shape (rows, n): row b of x is correlated with row
    b of y at each of the two scales. Rows with a constant vector, or with |r| = 1, must be dropped first.
    """
    (x0, y0), (x1, y1) = (tuple(np.atleast_2d(np.asarray(a, dtype=float)) for a in pair) for pair in (before, after))
    n_rows, n = x0.shape
    if n <= 3:
        raise BadValue(f"n = {n}: dependent-correlation tests need more than 3 observations")
    R = np.corrcoef(np.vstack([x0, y0, x1, y1]))  # variables: x0 rows, y0 rows, x1 rows, y1 rows
    rows = np.arange(n_rows)
    pairs_before = list(zip(rows, rows + n_rows, strict=True))
    pairs_after = list(zip(rows + 2 * n_rows, rows + 3 * n_rows, strict=True))
    r0 = np.array([R[a, b] for a, b in pairs_before])
    r1 = np.array([R[a, b] for a, b in pairs_after])
    pooled = R.copy()
    mean = (r0 + r1) / 2
    for (a, b), (c, d), m in zip(pairs_before, pairs_after, mean, strict=True):
        pooled[a, b] = pooled[b, a] = pooled[c, d] = pooled[d, c] = m
    pairs = pairs_after + pairs_before
    signs = np.r_[np.ones(n_rows), -np.ones(n_rows)] / n_rows
    scale = np.r_[1 - mean**2, 1 - mean**2]
    variance = sum(
        signs[i] * signs[j] * pearson_filon_covariance(pooled, pairs[i], pairs[j]) / (scale[i] * scale[j])
        for i in range(len(pairs))
        for j in range(len(pairs))
    )
    if not variance > 0:  # a degenerate covariance (e.g. identical rows at both scales): no test
        return float("nan"), float("nan")
    z = np.mean(np.arctanh(r1) - np.arctanh(r0)) * math.sqrt(n - 3) / math.sqrt(variance)
    return float(z), float(2 * sps.norm.sf(abs(z)))
