"""RQ3: how does transfer change with scale? Dependent-correlation differences, coherence, matrices.

The paper compared 240M with 1B by eye: mean accuracy transfer 0.49 -> 0.60, confidence 0.68 -> 0.39;
intra-category coherence (science accuracy PT 0.24 -> 0.50); PT and SFT confidence heatmaps that agree
with r = 0.73, p < 1e-32 at 240M. We add:

- scale differences as dependent correlations: r_small and r_large are measured on the same mixtures,
  so the difference gets a paired bootstrap interval over mixtures (the same resample at both scales) and
  a test that holds its level, `p`: Steiger's (1980) Z for one benchmark, its mean over benchmarks
  (`dependent.mean_steiger_z`) for a category (Pearson only). The bootstrap's own p (`p_boot`, twice the
  share of resamples beyond 0) is kept for comparison but is not for decisions: its type-I error at
  n = 9 was 5.4-8.2% in an audit and 4.3-9.3% for normal and binomial scores in
  bench/analysis_intervals.py, where Steiger's Z (and its mean) stays at 1.1-5.6% (under heavy tails
  every test exceeds 5%). Zou's (2007) interval is given beside the bootstrap's. The order of scales is n_params or `scales=`, never row order;
- coherence pair tables and category means with intervals;
- the matrix comparison with a Mantel test: the SFT matrix's benchmark labels are permuted on rows and
  columns together, which respects that the 190 off-diagonal entries share benchmarks. The naive p that
  treats the entries as independent (what p < 1e-32 suggests) is reported beside it for contrast.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm.auto import tqdm

from .dependent import mean_steiger_z, steiger_z, zou_interval
from .stats import (
    LEVEL,
    MAX_DEGENERATE_SHARE,
    N_BOOT,
    SEED,
    bootstrap_indices,
    correlation,
    mean_correlation,
    p_from_null,
    pairings,
    percentile_interval,
)
from .tables import CATEGORIES, as_tuple, mixture_matrix, scale_order, select, stage_pairs
from .transfer import ALL

COHERENCE_KINDS = ("PT-PT", "SFT-SFT", "PT-SFT")
N_MANTEL = 9_999


def _paired_difference(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    method: str,
    n_boot: int,
    level: float,
    seed: int,
) -> dict:
    """Mean corr(PT, SFT) over rows at two scales, their difference, its paired bootstrap interval, and
    the level-holding test `p` (Pearson only, over rows with a defined |r| < 1 at both scales)."""
    indices = bootstrap_indices(before[0].shape[1], n_boot, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-degenerate resamples: counted below
        r_from, r_to = (np.nanmean(correlation(*pair, method)) for pair in (before, after))
        boot = [
            np.nanmean(correlation(pt[:, indices], sft[:, indices], method), axis=0)
            for pt, sft in (before, after)
        ]
    difference = boot[1] - boot[0]
    low, high, dropped = percentile_interval(difference, level)
    finite = difference[np.isfinite(difference)]
    p_boot = min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))) if finite.size else np.nan
    reliable = bool(
        np.isfinite(low) and abs(r_from) < 1 and abs(r_to) < 1 and dropped <= MAX_DEGENERATE_SHARE * n_boot
    )
    return {
        "r_from": float(r_from),
        "r_to": float(r_to),
        "difference": float(r_to - r_from),
        "ci_low": low,
        "ci_high": high,
        "ci_reliable": reliable,
        "p": _mean_steiger_p(before, after) if method == "pearson" else np.nan,
        "p_boot": float(p_boot),
        "boot_degenerate": dropped,
    }


def _mean_steiger_p(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray]) -> float:
    """Steiger's p for the mean difference over the rows with a defined |r| < 1 at both scales."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r_before, r_after = (correlation(*pair) for pair in (before, after))
    keep = (np.abs(r_before) < 1) & (np.abs(r_after) < 1)  # NaN (constant) compares False
    if not keep.any() or before[0].shape[1] <= 3:
        return float("nan")
    with np.errstate(invalid="ignore"):
        _, p = mean_steiger_z(tuple(a[keep] for a in before), tuple(a[keep] for a in after))
    return p


def _stage_vectors(scores: pd.DataFrame, metric: str, categories: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        stage_pairs(mixture_matrix(scores, metric, categories)),
        columns=["scale", "category", "benchmark", "pt", "sft"],
    )


def scale_differences(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "confidence"),
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
    *,
    scales: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """r_to - r_from of each benchmark's cross-stage transfer between consecutive scales (small -> large).

    Scales are ordered by n_params, or by `scales` (small to large; required without n_params).
    Columns: metric, category, benchmark, method, scale_from, scale_to, n, r_from, r_to, difference,
    ci_low, ci_high (paired percentile bootstrap), ci_reliable (False around |r| = 1 or for heavily tied
    vectors), p (Steiger's Z: the test to decide by), p_boot (twice the bootstrap share beyond 0; kept
    for comparison, it rejects too often), boot_degenerate, steiger_z, steiger_p (= p), zou_low, zou_high
    (Pearson only; NaN otherwise).
    """
    rows = []
    scales = scale_order(scores, scales)
    for metric in as_tuple(metrics):
        vectors = _stage_vectors(scores, metric, categories).set_index(["scale", "category", "benchmark"])
        for small, large in zip(scales, scales[1:], strict=False):
            common = vectors.loc[small].index.intersection(vectors.loc[large].index, sort=False)
            for category, benchmark in tqdm(common, desc=f"scale differences {metric}", leave=False):
                (pt_s, sft_s), (pt_l, sft_l) = (vectors.loc[(s, category, benchmark)] for s in (small, large))
                row = {
                    "metric": metric,
                    "category": category,
                    "benchmark": benchmark,
                    "method": method,
                    "scale_from": small,
                    "scale_to": large,
                    "n": len(pt_s),
                    **_paired_difference(
                        (pt_s[None], sft_s[None]), (pt_l[None], sft_l[None]), method, n_boot, level, seed
                    ),
                }
                rows.append(row | _steiger(pt_s, sft_s, pt_l, sft_l, method, level))
    return pd.DataFrame(rows)


def _steiger(pt_s, sft_s, pt_l, sft_l, method: str, level: float) -> dict:
    nan = {"steiger_z": np.nan, "steiger_p": np.nan, "zou_low": np.nan, "zou_high": np.nan}
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.corrcoef([pt_s, sft_s, pt_l, sft_l])
    if (
        method != "pearson"
        or len(pt_s) <= 3
        or not np.isfinite(R).all()
        or (np.abs(R[[0, 2], [1, 3]]) >= 1).any()
    ):
        return nan
    z, p = steiger_z(R, (2, 3), (0, 1), len(pt_s))
    low, high = zou_interval(R, (2, 3), (0, 1), len(pt_s), level)
    return {"steiger_z": z, "steiger_p": p, "zou_low": low, "zou_high": high}


def category_scale_differences(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "confidence"),
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
    *,
    scales: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """The change of a category's mean cross-stage r between consecutive scales, with a paired bootstrap.

    The paper's headline (mean accuracy r 0.49 -> 0.60, confidence 0.68 -> 0.39) is category "all".
    Scales as in `scale_differences`. Columns: metric, category, method, scale_from, scale_to,
    n_benchmarks, r_from, r_to, difference, ci_low, ci_high, ci_reliable, p (`dependent.mean_steiger_z`
    over the benchmarks with |r| < 1 at both scales; Pearson only), p_boot (not for decisions),
    boot_degenerate.
    """
    rows = []
    scales = scale_order(scores, scales)
    for metric in as_tuple(metrics):
        vectors = _stage_vectors(scores, metric, categories)
        groups = [(c, g) for c, g in vectors.groupby("category", sort=False)] + [(ALL, vectors)]
        for category, group in groups:
            for small, large in zip(scales, scales[1:], strict=False):
                at = {s: group[group["scale"] == s].set_index("benchmark") for s in (small, large)}
                common = at[small].index.intersection(at[large].index, sort=False)
                before, after = (
                    (np.stack(at[s].loc[common, "pt"]), np.stack(at[s].loc[common, "sft"]))
                    for s in (small, large)
                )
                rows.append(
                    {
                        "metric": metric,
                        "category": category,
                        "method": method,
                        "scale_from": small,
                        "scale_to": large,
                        "n_benchmarks": len(common),
                        **_paired_difference(before, after, method, n_boot, level, seed),
                    }
                )
    return pd.DataFrame(rows)


def _coherence_vectors(matrix: pd.DataFrame, scale: str, category: str):
    """(kind, benchmark_i, benchmark_j, x, y) for every pair of distinct benchmarks of one category."""
    pt, sft = (select(matrix, scale=scale, stage=stage, category=category) for stage in ("PT", "SFT"))
    for i, j in itertools.combinations(pt.index, 2):
        yield "PT-PT", i, j, pt.loc[i].to_numpy(float), pt.loc[j].to_numpy(float)
    for i, j in itertools.combinations(sft.index, 2):
        yield "SFT-SFT", i, j, sft.loc[i].to_numpy(float), sft.loc[j].to_numpy(float)
    for i, j in itertools.permutations(pt.index.intersection(sft.index, sort=False), 2):
        yield "PT-SFT", i, j, pt.loc[i].to_numpy(float), sft.loc[j].to_numpy(float)


def _scale_categories(matrix: pd.DataFrame) -> list[tuple[str, str]]:
    """(scale, category) pairs scored at both stages, in the matrix's order."""
    keys = matrix.index.droplevel("benchmark").unique()
    stages = {(scale, category): set() for scale, _, category in keys}
    for scale, stage, category in keys:
        stages[(scale, category)].add(stage)
    return [key for key, present in stages.items() if {"PT", "SFT"} <= present]


def coherence_pairs(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "confidence"),
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """Intra-category coherence: corr between two different benchmarks i != j of one category.

    kind "PT-PT": corr(a_i^PT, a_j^PT); "SFT-SFT": the same after SFT; "PT-SFT": corr(a_i^PT, a_j^SFT),
    every ordered pair (the paper's cross-stage coherence). Positive = synergy, negative = competition.
    Columns: scale, metric, category, kind, benchmark_i, benchmark_j, method, r.
    """
    rows = []
    for metric in as_tuple(metrics):
        matrix = mixture_matrix(scores, metric, categories)
        for scale, category in _scale_categories(matrix):
            for kind, i, j, x, y in _coherence_vectors(matrix, scale, category):
                rows.append(
                    {
                        "scale": scale,
                        "metric": metric,
                        "category": category,
                        "kind": kind,
                        "benchmark_i": i,
                        "benchmark_j": j,
                        "method": method,
                        "r": float(correlation(x, y, method)),
                    }
                )
    return pd.DataFrame(rows)


def coherence_means(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "confidence"),
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """Mean coherence over a category's benchmark pairs, per (scale, metric, category, kind), with a CI.

    The paper (science accuracy, 240M -> 1B): PT 0.24 -> 0.50, SFT -0.19 -> 0.17, cross -0.15 -> 0.25.
    The interval resamples mixtures for all pairs at once. Columns: scale, metric, category, kind, method,
    n, n_pairs, mean_r, ci_low, ci_high, boot_degenerate.
    """
    pairs = []
    for metric in as_tuple(metrics):
        matrix = mixture_matrix(scores, metric, categories)
        for scale, category in _scale_categories(matrix):
            for kind, *_, x, y in _coherence_vectors(matrix, scale, category):
                pairs.append((scale, metric, category, kind, x, y))
    rows = []
    frame = pd.DataFrame(pairs, columns=["scale", "metric", "category", "kind", "x", "y"])
    groups = frame.groupby(["scale", "metric", "category", "kind"], sort=False)
    for (scale, metric, category, kind), group in tqdm(groups, desc="coherence means", leave=False):
        summary = mean_correlation(
            np.stack(group["x"]),
            np.stack(group["y"]),
            method,
            permutation_p=False,
            n_boot=n_boot,
            level=level,
            seed=seed,
        )
        summary.pop("p")
        summary["n_pairs"] = summary.pop("n_rows")
        rows.append({"scale": scale, "metric": metric, "category": category, "kind": kind, **summary})
    return pd.DataFrame(rows)


def _stage_matrix(matrix: pd.DataFrame, scale: str, stage: str, method: str) -> pd.DataFrame:
    values = select(matrix, scale=scale, stage=stage)
    r = correlation(values.to_numpy(float)[:, None, :], values.to_numpy(float)[None, :, :], method)
    return pd.DataFrame(r, index=values.index, columns=values.index)


def cross_benchmark_matrix(
    scores: pd.DataFrame,
    metric: str = "confidence",
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """corr(b_i, b_j) across mixtures for every pair of benchmarks, per (scale, stage), in long form.

    The paper's 20 x 20 confidence heatmaps. Columns: scale, stage, category_i, benchmark_i, category_j,
    benchmark_j, metric, method, r (diagonal included, so a heatmap is complete).
    """
    matrix = mixture_matrix(scores, metric, categories)
    frames = []
    for scale, stage in matrix.index.droplevel(["category", "benchmark"]).unique():
        square = _stage_matrix(matrix, scale, stage, method)
        square.index.names = ["category_i", "benchmark_i"]
        square.columns.names = ["category_j", "benchmark_j"]
        long = square.stack(["category_j", "benchmark_j"]).rename("r").reset_index()
        frames.append(long.assign(scale=scale, stage=stage, metric=metric, method=method))
    columns = [
        "scale",
        "stage",
        "category_i",
        "benchmark_i",
        "category_j",
        "benchmark_j",
        "metric",
        "method",
        "r",
    ]
    return pd.concat(frames, ignore_index=True)[columns]


def matrix_similarity(
    scores: pd.DataFrame,
    metric: str = "confidence",
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
    *,
    n_perm: int = N_MANTEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """How alike the PT and SFT cross-benchmark matrices are, per scale: Pearson r of the off-diagonal
    entries, with a one-sided Mantel permutation p (exact over all label orders for <= 9 benchmarks).

    Columns: scale, metric, method, n_benchmarks, n_entries, r, p_mantel, p_naive, exact.
    """
    matrix = mixture_matrix(scores, metric, categories)
    rows = []
    for scale in _scales_with_both_stages(matrix):
        pt, sft = (_stage_matrix(matrix, scale, stage, method) for stage in ("PT", "SFT"))
        common = pt.index.intersection(sft.index, sort=False)
        # A benchmark constant across mixtures at either stage has no correlations at all: leave it out, or
        # every permutation that moves it yields an undefined null and the p-value degenerates to 1.
        common = [b for b in common if np.isfinite(pt.loc[b, b]) and np.isfinite(sft.loc[b, b])]
        pt, sft = pt.loc[common, common].to_numpy(), sft.loc[common, common].to_numpy()
        i, j = np.triu_indices(len(common), 1)
        kept = np.isfinite(pt[i, j]) & np.isfinite(sft[i, j])
        observed = float(correlation(pt[i, j][kept], sft[i, j][kept]))
        orders, exact = pairings(len(common), n_perm, seed)
        permuted = sft[orders[:, i], orders[:, j]][:, kept]
        null = correlation(pt[i, j][kept], permuted)
        rows.append(
            {
                "scale": scale,
                "metric": metric,
                "method": method,
                "n_benchmarks": len(common),
                "n_entries": int(kept.sum()),
                "r": observed,
                "p_mantel": p_from_null(null[np.isfinite(null)], observed, "greater", exact),
                "p_naive": float(sps.pearsonr(pt[i, j][kept], sft[i, j][kept]).pvalue),
                "exact": exact,
            }
        )
    return pd.DataFrame(rows)


def _scales_with_both_stages(matrix: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(scale for scale, _ in _scale_categories(matrix)))
