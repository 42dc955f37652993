"""What the data can show: per benchmark and metric, is the mixture signal above its noise floor, and only then,
does it transfer. The table behind RQ1-RQ4's verdicts and `magic analyse --items`.

One row per (scale, benchmark, metric) of an items table (`analysis.items`), joining `crossfit` (naive,
split, corrected r, reliabilities, ceiling) and `components` (variance components, mixture-component r and
its permutation test), then:

- signal: the mixture differences exceed item noise at both stages (Hoyt F test, `signal_p_*`) and, with
  several seeds, seed noise at both stages (nested F test, `seed_p_*`); Holm-adjusted across the benchmarks
  of each (scale, metric, stage) family, at `alpha`. `noise_floor` says which floors were measured.
- transfer test: with seeds, the mixture-label permutation test of the mixture component (`mixture_p`);
  with one seed, the split-r permutation test (`split_p`: item noise removed, seed noise not). Tested only
  where the signal is measurable, Holm-adjusted across those benchmarks per (scale, metric).
- verdict: "not measurable at this scale" (no signal), "rankings persist" / "rankings reverse" (signal,
  and the transfer test rejects with r > 0 / r < 0), or "no evidence of transfer" (signal, no rejection).
  With one seed the mixture effect cannot be told from the models' own seed effects, so a rejection reads
  "model rankings persist (seed noise unmeasured)" / "... reverse ...": item noise is ruled out, seed
  noise is not.
- planning (`items_needed`, `seeds_needed`): the items (at the present seeds) and seeds (at the present
  items) with which the signal tests would reach 80% power at level alpha for both stages, if the measured
  variance components were the truth (noisy at n = 9: a guide, not a promise). NaN where the measured
  mixture component is <= 0 (no amount would do by this estimate), or seeds where there is one seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm.auto import tqdm

from .components import N_PERM, mixture_transfer
from .crossfit import N_BOOT, crossfit
from .items import ITEM_METRICS, cubes, per_item
from .stats import LEVEL, SEED

ALPHA = 0.05
POWER = 0.8
MAX_ITEMS = 1_000_000
MAX_SEEDS = 100
VERDICTS = ("rankings persist", "rankings reverse", "no evidence of transfer", "not measurable at this scale",
            "model rankings persist (seed noise unmeasured)", "model rankings reverse (seed noise unmeasured)")


def items_needed(ms_mixture: float, ms_residual: float, n_items: int, k: int, alpha: float = ALPHA,
                 power: float = POWER) -> float:
    """Items for `power` in the Hoyt F test, from its mean squares at n_items (random-effects model).

    theta = sigma2_mixture / sigma2_residual; F / (1 + n theta) ~ F(k - 1, (k - 1)(n - 1)).
    """
    if not ms_residual > 0:  # no item noise (or no data): the question does not arise
        return np.nan
    theta = (ms_mixture - ms_residual) / (n_items * ms_residual)
    if not np.isfinite(theta) or theta <= 0:
        return np.nan
    n = np.unique(np.geomspace(2, MAX_ITEMS, 2000).astype(int))
    df2 = (k - 1) * (n - 1)
    achieved = sps.f.sf(sps.f.isf(alpha, k - 1, df2) / (1 + n * theta), k - 1, df2)
    return float(n[np.argmax(achieved >= power)]) if (achieved >= power).any() else np.nan


def seeds_needed(mixture_var: float, noise_var: float, k: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds for `power` in the nested F test; noise_var = MS_within (seed + item variance of a run mean)."""
    theta = mixture_var / noise_var if noise_var > 0 else np.nan
    if not np.isfinite(theta) or theta <= 0:
        return np.nan
    s = np.arange(2, MAX_SEEDS + 1)
    df2 = k * (s - 1)
    achieved = sps.f.sf(sps.f.isf(alpha, k - 1, df2) / (1 + s * theta), k - 1, df2)
    return float(s[np.argmax(achieved >= power)]) if (achieved >= power).any() else np.nan


def holm(table: pd.DataFrame, p_column: str, by: Sequence[str]) -> pd.Series:
    """Holm-adjusted p-values of `p_column` within each group of `by`; NaN p-values are not tests.

    The same numbers as `multitest.adjust_pvalues(..., ("holm",))`, computed here because statsmodels' Holm
    runs a full garbage collection per call (about 0.3 s each with a study's items table in memory).
    """
    adjusted = pd.Series(np.nan, index=table.index)
    for _, group in table.groupby(list(by), sort=False):
        p = group[p_column].dropna().sort_values(kind="stable")
        steps = np.maximum.accumulate(p.to_numpy() * np.arange(len(p), 0, -1))
        adjusted[p.index] = np.minimum(steps, 1.0)
    return adjusted


def _row(cube, n_boot: int, n_perm: int, level: float, seed: int, alpha: float) -> dict:
    row = {"scale": cube.scale, "category": cube.category, "benchmark": cube.benchmark, "metric": cube.metric}
    row |= crossfit(cube.values, n_boot=n_boot, level=level, seed=seed)
    row |= mixture_transfer(cube.values, n_perm=n_perm, n_boot=n_boot, level=level, seed=seed)
    k, s, n = row["n_mixtures"], row["n_seeds"], row["n_items"]
    needs_items = [items_needed(row[f"ms_mixture_{st}"], row[f"ms_residual_{st}"], n, k, alpha) for st in ("pt", "sft")]
    row["items_needed"] = max(needs_items)  # NaN if either stage has none
    if s > 1:
        needs_seeds = [seeds_needed(row[f"mixture_var_{st}"], row[f"seed_var_{st}"] + row[f"item_var_{st}"], k, alpha)
                       for st in ("pt", "sft")]
        row["seeds_needed"] = max(needs_seeds)
    else:
        row["seeds_needed"] = np.nan
    return row


def transfer_audit(
    items: pd.DataFrame,
    metrics: str | Sequence[str] = ITEM_METRICS,
    *,
    alpha: float = ALPHA,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    level: float = LEVEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """The audit table of an items table (per choice, `analysis.items` schema) or of its `per_item` table."""
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    table = items if "correct" in items.columns else per_item(items)
    all_cubes = list(cubes(table, metrics))
    rows = [_row(c, n_boot, n_perm, level, seed, alpha) for c in tqdm(all_cubes, desc="transfer audit", leave=False)]
    audit = pd.DataFrame(rows)
    families = ["scale", "metric"]
    for stage in ("pt", "sft"):
        audit[f"signal_p_{stage}_holm"] = holm(audit, f"signal_p_{stage}", families)
        audit[f"seed_p_{stage}_holm"] = holm(audit, f"seed_p_{stage}", families)
    signal = (audit["signal_p_pt_holm"] < alpha) & (audit["signal_p_sft_holm"] < alpha)
    seeded = audit["n_seeds"] > 1
    seed_signal = (audit["seed_p_pt_holm"] < alpha) & (audit["seed_p_sft_holm"] < alpha)
    audit["noise_floor"] = np.where(seeded, "items and seeds", "items (one seed)")
    audit["measurable"] = signal & (seed_signal | ~seeded)
    audit["transfer_r"] = np.where(seeded, audit["mixture_r"], audit["split_r"])
    audit["transfer_p"] = np.where(audit["measurable"], np.where(seeded, audit["mixture_p"], audit["split_p"]), np.nan)
    audit["transfer_p_holm"] = holm(audit, "transfer_p", families)
    rejects = audit["transfer_p_holm"] < alpha
    up, down = rejects & (audit["transfer_r"] > 0), rejects & (audit["transfer_r"] < 0)
    audit["verdict"] = np.select(
        [~audit["measurable"], up & seeded, down & seeded, up, down],
        [VERDICTS[3], VERDICTS[0], VERDICTS[1], VERDICTS[4], VERDICTS[5]], VERDICTS[2])
    return audit


def planning_table(audit: pd.DataFrame) -> pd.DataFrame:
    """Per (scale, metric): benchmarks measurable now, and the median items / seeds the others would need."""
    rows = []
    for (scale, metric), group in audit.groupby(["scale", "metric"], sort=False):
        rest = group[~group["measurable"]]
        rows.append({"scale": scale, "metric": metric, "n_benchmarks": len(group),
                     "measurable": int(group["measurable"].sum()),
                     "n_items": int(group["n_items"].median()), "n_seeds": int(group["n_seeds"].max()),
                     "items_needed_median": rest["items_needed"].median(),
                     "seeds_needed_median": rest["seeds_needed"].median(),
                     "never_by_estimate": int(rest["items_needed"].isna().sum())})
    return pd.DataFrame(rows)
