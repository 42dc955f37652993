"""Item noise in cross-stage transfer: item-split cross-fitting, reliability, the noise ceiling, disattenuation.

Every SFT model is scored on the same items as its PT parent, so which items a mixture's model happens to get
right at PT it tends to get right at SFT too: the naive corr(PT, SFT) across mixtures carries this shared
item noise. Here, for one (scale, benchmark, metric) and the seed-mean of each mixture on each item:

- split r: the items are split once into halves A and B (a fixed, seeded split of the benchmark's items, the
  same for every run); r_split = (corr(PT_A, SFT_B) + corr(PT_B, SFT_A)) / 2. Item noise is then independent
  between the two vectors. Its p-value permutes mixtures jointly for both terms (`stats.mean_correlation`).
- reliability R of a stage's 9-mixture vector: the share of its variance across mixtures that is not item
  sampling variance. Estimator: Hoyt's ANOVA over the mixtures x items table (equal to Cronbach's alpha
  with items as raters), R = 1 - MS_residual / MS_mixture, where MS_mixture = n_items * var(mixture means)
  and MS_residual is the mixture x item interaction mean square. F = MS_mixture / MS_residual tests "no
  mixture differences beyond item noise". R can be negative (no signal); it is not clipped.
- ceiling sqrt(R_PT R_SFT): the largest correlation two vectors with independent item noise can show. A naive
  r above it is a sign of shared item noise.
- Spearman-Brown: a half has reliability R_h = R / (2 - R); the split r stepped up to full length is
  r_split * sqrt(R_PT R_SFT / (R_h,PT R_h,SFT)), and the correlation corrected for attenuation is
  r_split / sqrt(R_h,PT R_h,SFT) (undefined where a reliability is <= 0). Corrected values outside [-1, 1]
  are kept and flagged (`corrected_outside`): they say the reliabilities are estimated too low for this r.
- intervals: percentile bootstrap that resamples mixtures and, independently, items within each half,
  jointly (both sources of uncertainty); draws where a statistic is undefined are dropped and counted.

Seed noise is not removed here (the seed-means still carry it): see `components`.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from ..errors import BadValue
from .stats import LEVEL, SEED, correlate, correlation, mean_correlation, percentile_interval

SPLIT_SEED = 0
N_BOOT = 1_000
# bootstrap draws per vectorised block, so memory stays ~ (block x stages x mixtures x items) floats
_BLOCK_FLOATS = 4_000_000


def item_split(n_items: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """A fixed half-split of n items: True for half A (n // 2 items), False for half B."""
    if n_items < 4:
        raise BadValue(f"an item split needs at least 4 items (2 per half), got {n_items}")
    in_a = np.zeros(n_items, dtype=bool)
    in_a[np.random.default_rng(seed).permutation(n_items)[: n_items // 2]] = True
    return in_a


def hoyt(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, MS_mixture, MS_residual) of the mixtures x items tables x[..., mixture, item] (Hoyt's ANOVA)."""
    k, n = x.shape[-2:]
    mixture_means, item_means = x.mean(-1), x.mean(-2)
    grand = mixture_means.mean(-1)
    ms_mixture = n * ((mixture_means - grand[..., None]) ** 2).sum(-1) / (k - 1)
    residual = x - mixture_means[..., None] - item_means[..., None, :] + grand[..., None, None]
    ms_residual = (residual**2).sum((-1, -2)) / ((k - 1) * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):  # no spread across mixtures: R undefined (NaN)
        reliability = np.where(ms_mixture > 0, 1 - ms_residual / ms_mixture, np.nan)
    return reliability, ms_mixture, ms_residual


def half_reliability(reliability):
    """Spearman-Brown down to half length: R / (2 - R)."""
    return reliability / (2 - reliability)


def _split_stats(x: np.ndarray, in_a: np.ndarray) -> dict[str, np.ndarray]:
    """split r, reliabilities and corrected r of seed-mean cubes x[..., stage, mixture, item]."""
    a, b = x[..., in_a].mean(-1), x[..., ~in_a].mean(-1)
    terms = np.stack([correlation(a[..., 0, :], b[..., 1, :]), correlation(b[..., 0, :], a[..., 1, :])])
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # both halves constant: NaN, counted by the caller
        split_r = np.nanmean(terms, axis=0)
        r_pt, _, _ = hoyt(x[..., 0, :, :])
        r_sft, _, _ = hoyt(x[..., 1, :, :])
        h_pt, h_sft = half_reliability(r_pt), half_reliability(r_sft)
        positive = (h_pt > 0) & (h_sft > 0)
        corrected = np.where(positive, split_r / np.sqrt(np.where(positive, h_pt * h_sft, 1.0)), np.nan)
    return {"split_r": split_r, "reliability_pt": r_pt, "reliability_sft": r_sft, "corrected_r": corrected}


def joint_bootstrap(x: np.ndarray, statistic, in_a: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED):
    """statistic(cubes, split) over n_boot draws of x[stage, mixture, (seed,) item] resampled jointly.

    Each draw resamples mixtures with replacement (a mixture keeps all its seeds) and, independently,
    items with replacement within half A and within half B, so the split is kept. `statistic` gets the
    draws stacked on a leading axis and the split of the resampled items; it returns a dict of arrays.
    """
    rng = np.random.default_rng(seed)
    k, n = x.shape[1], x.shape[-1]
    half_a, half_b = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    mixtures = rng.integers(0, k, size=(n_boot, k))
    items = np.concatenate([rng.choice(half_a, size=(n_boot, half_a.size)),
                            rng.choice(half_b, size=(n_boot, half_b.size))], axis=1)
    resplit = np.arange(n) < half_a.size  # after resampling, the first |A| columns are half A
    block = max(1, _BLOCK_FLOATS // x.size)
    out: dict[str, list] = {}
    for start in range(0, n_boot, block):
        m, i = mixtures[start:start + block], items[start:start + block]
        cube = np.moveaxis(x[:, m], 1, 0)  # (draw, stage, mixture, [seed,] item)
        cube = np.take_along_axis(cube, i.reshape(len(i), *([1] * (cube.ndim - 2)), n), axis=-1)
        for name, values in statistic(cube, resplit).items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in out.items()}


def crossfit(
    values: np.ndarray, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED,
    split_seed: int = SPLIT_SEED,
) -> dict:
    """Naive, split and corrected cross-stage r of one cube values[stage, mixture, seed, item] (seed-means).

    Returns a dict (one row of a results table): naive_r/_p/_low/_high (`stats.correlate` on the full-item
    seed-means), split_r/_p/_low/_high (mixture bootstrap of `stats.mean_correlation`), split_r_full,
    reliability_pt/_sft with _low/_high, signal F and p per stage (F test of the Hoyt ANOVA: mixtures
    differ beyond item noise), ceiling, corrected_r/_low/_high, corrected_outside and boot_degenerate
    (joint bootstrap draws with no corrected r).
    """
    x = np.asarray(values, float).mean(2)  # (stage, mixture, item): seed-means
    k, n = x.shape[1:]
    in_a = item_split(n, split_seed)
    naive = correlate(x[0].mean(-1), x[1].mean(-1), "pearson", level=level, seed=seed)
    a, b = x[..., in_a].mean(-1), x[..., ~in_a].mean(-1)  # (stage, mixture) per half
    split = mean_correlation(np.stack([a[0], b[0]]), np.stack([b[1], a[1]]), "pearson", level=level, seed=seed)
    point = {name: float(v) for name, v in _split_stats(x, in_a).items()}
    row = {"n_mixtures": k, "n_items": n,
           "naive_r": naive["r"], "naive_p": naive["p"], "naive_low": naive["ci_low"], "naive_high": naive["ci_high"],
           "split_r": split["mean_r"], "split_p": split["p"], "split_low": split["ci_low"],
           "split_high": split["ci_high"],
           # False where the interval should not be read (|r| = 1, heavy ties: see stats.correlate)
           "naive_ci_reliable": bool(naive["ci_reliable"]), "split_ci_reliable": bool(split["ci_reliable"])}
    for stage, index in (("pt", 0), ("sft", 1)):
        _, ms_mixture, ms_residual = hoyt(x[index])
        with np.errstate(divide="ignore", invalid="ignore"):
            f = float(ms_mixture / ms_residual)
        row[f"signal_f_{stage}"] = f
        row[f"signal_p_{stage}"] = float(sps.f.sf(f, k - 1, (k - 1) * (n - 1))) if np.isfinite(f) else np.nan
        row[f"ms_mixture_{stage}"], row[f"ms_residual_{stage}"] = float(ms_mixture), float(ms_residual)
    r_pt, r_sft = point["reliability_pt"], point["reliability_sft"]
    h_pt, h_sft = half_reliability(r_pt), half_reliability(r_sft)
    ceiling = np.sqrt(r_pt * r_sft) if r_pt > 0 and r_sft > 0 else np.nan
    boot = joint_bootstrap(x, _split_stats, in_a, n_boot, seed)
    row |= {"reliability_pt": r_pt, "reliability_sft": r_sft, "ceiling": float(ceiling),
            "split_r_full": float(point["corrected_r"] * ceiling) if h_pt > 0 and h_sft > 0 else np.nan,
            "corrected_r": point["corrected_r"],
            "corrected_outside": bool(abs(point["corrected_r"]) > 1)}
    for name in ("reliability_pt", "reliability_sft", "corrected_r"):
        low, high, dropped = percentile_interval(boot[name], level)
        row[f"{name.removesuffix('_r')}_low"], row[f"{name.removesuffix('_r')}_high"] = low, high
    row["boot_degenerate"] = int(np.count_nonzero(~np.isfinite(boot["corrected_r"])))
    return row
