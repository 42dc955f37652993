"""Seed noise in cross-stage transfer: variance components, the mixture-component correlation, its test.

A mixture's PT model differs from another's by its mixture and by its own seed (initialisation, data order);
its SFT child inherits both. With several seeds per mixture the two can be told apart, the way quantitative
genetics tells a family effect from individual noise (mixture = family, seeds = siblings, PT and SFT = two
traits). For one (scale, benchmark, metric), with run means y[stage, mixture, seed] (over all items, or
over a half of the item split of `crossfit`):

- variance components per stage (one-way ANOVA of the run means, method of moments; not clipped at 0):
  MS_between = S var_m(mean over seeds), MS_within = pooled variance across seeds;
  item = MS_residual(runs x items) / n_items (item sampling variance of a run mean),
  seed = MS_within - item, mixture = (MS_between - MS_within) / S.
  F = MS_between / MS_within on (k - 1, k (S - 1)) degrees of freedom tests "no mixture effect beyond seed
  (and item) noise": `seed_p`.
- mixture covariance of two vectors a, b (`mixture_covariance`): the same estimator on cross-products,
  (MCP_between - MCP_within) / S, unbiased for the covariance of the mixture components.
- mixture-component r = mean(C(PT_A, SFT_B), C(PT_B, SFT_A)) / sqrt(C(PT_A, PT_B) C(SFT_A, SFT_B)), with A, B
  the item halves: the within-mixture term removes seed noise (shared by a PT model and its SFT child), the
  item split removes item noise. Undefined (NaN) where a stage shows no mixture variance (C <= 0).
- test: null "no mixture effect that persists". Runs (a PT model with its SFT child) are exchangeable
  across mixture labels under it, so the labels are permuted across all k x S runs, jointly at both stages
  and halves; the statistic is the cross-stage mixture covariance (the numerator). Exact (up to Monte
  Carlo) when no mixture effect exists at either stage; approximate when one stage has an effect that the
  other lacks.
- interval: the joint bootstrap of `crossfit` (mixtures with all their seeds, items within halves).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from .crossfit import N_BOOT, SPLIT_SEED, hoyt, item_split, joint_bootstrap
from .stats import LEVEL, SEED, p_from_null, percentile_interval

N_PERM = 9_999


def mixture_covariance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Covariance of the mixture components of a[..., mixture, seed] and b[..., mixture, seed].

    With one seed the within term is not defined and this is the plain covariance across mixtures (seed
    noise included).
    """
    k, s = a.shape[-2:]
    mean_a, mean_b = a.mean(-1), b.mean(-1)
    between = s * ((mean_a - mean_a.mean(-1, keepdims=True)) * (mean_b - mean_b.mean(-1, keepdims=True))).sum(-1)
    between = between / (k - 1)
    if s == 1:
        return between
    within = ((a - mean_a[..., None]) * (b - mean_b[..., None])).sum((-1, -2)) / (k * (s - 1))
    return (between - within) / s


def variance_components(x: np.ndarray) -> dict:
    """Mixture, seed and item variance components of one stage's values x[mixture, seed, item].

    Returns mixture_var, seed_var, item_var (see the module text), seed_f and seed_p (NaN with one seed).
    """
    k, s, n = x.shape
    runs = x.mean(-1)
    ms_between = s * runs.mean(-1).var(ddof=1)
    _, _, ms_residual = hoyt(x.reshape(k * s, n))
    item = float(ms_residual / n)
    if s == 1:
        return {"mixture_var": float(ms_between - item), "seed_var": np.nan, "item_var": item,
                "seed_f": np.nan, "seed_p": np.nan}
    ms_within = float(((runs - runs.mean(-1, keepdims=True)) ** 2).sum() / (k * (s - 1)))
    f = ms_between / ms_within if ms_within > 0 else np.nan
    return {"mixture_var": float((ms_between - ms_within) / s), "seed_var": ms_within - item, "item_var": item,
            "seed_f": float(f), "seed_p": float(sps.f.sf(f, k - 1, k * (s - 1))) if np.isfinite(f) else np.nan}


def _halves(x: np.ndarray, in_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[..., in_a].mean(-1), x[..., ~in_a].mean(-1)  # each (..., stage, mixture, seed)


def _cross_stage(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (mixture_covariance(a[..., 0, :, :], b[..., 1, :, :])
            + mixture_covariance(b[..., 0, :, :], a[..., 1, :, :])) / 2


def _component_r(x: np.ndarray, in_a: np.ndarray) -> dict[str, np.ndarray]:
    a, b = _halves(x, in_a)
    pt = mixture_covariance(a[..., 0, :, :], b[..., 0, :, :])
    sft = mixture_covariance(a[..., 1, :, :], b[..., 1, :, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        positive = (pt > 0) & (sft > 0)
        r = np.where(positive, _cross_stage(a, b) / np.sqrt(np.where(positive, pt * sft, 1.0)), np.nan)
    return {"mixture_r": r}


def mixture_transfer(
    values: np.ndarray, *, n_perm: int = N_PERM, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED,
    split_seed: int = SPLIT_SEED,
) -> dict:
    """Variance components per stage and transfer of the mixture component, for values[stage, mixture, seed, item].

    Returns a dict: n_seeds, mixture_var/seed_var/item_var/seed_f/seed_p per stage (suffix _pt, _sft),
    mixture_r with mixture_low/high (joint bootstrap), mixture_outside (|r| > 1) and mixture_p (permutation test; NaN with one seed).
    """
    x = np.asarray(values, float)
    _, k, s, n = x.shape
    row: dict = {"n_seeds": s}
    for stage, index in (("pt", 0), ("sft", 1)):
        row |= {f"{name}_{stage}": value for name, value in variance_components(x[index]).items()}
    nan = float("nan")
    if s < 2:
        return row | {"mixture_r": nan, "mixture_low": nan, "mixture_high": nan, "mixture_outside": False,
                      "mixture_p": nan}
    in_a = item_split(n, split_seed)
    r = float(_component_r(x, in_a)["mixture_r"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, _ = percentile_interval(joint_bootstrap(x, _component_r, in_a, n_boot, seed)["mixture_r"], level)
    # permutation of mixture labels across runs, the same at both stages and halves
    a, b = _halves(x, in_a)  # (stage, mixture, seed)
    flat_a, flat_b = a.reshape(2, k * s), b.reshape(2, k * s)
    orders = np.random.default_rng(seed).permuted(np.tile(np.arange(k * s), (n_perm, 1)), axis=1)
    null = _cross_stage(np.moveaxis(flat_a[:, orders], 1, 0).reshape(n_perm, 2, k, s),
                        np.moveaxis(flat_b[:, orders], 1, 0).reshape(n_perm, 2, k, s))
    observed = float(_cross_stage(a, b))
    return row | {"mixture_r": r, "mixture_low": low, "mixture_high": high, "mixture_outside": bool(abs(r) > 1),
                  "mixture_p": p_from_null(null, observed, "two-sided", exact=False)}
