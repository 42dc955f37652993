"""Data effects: what the web source and the code share do to each benchmark, and whether it flips with scale.

The paper: code share correlates with HellaSwag at -0.94 (240M) / -0.80 (1B); FineWeb-Edu over RefinedWeb
(V2 - V1) lifts NLI accuracy by 5.0 pp at 240M but lowers it by 4.4 pp at 1B, a curation effect that
reverses with scale. We add intervals and tests: per-benchmark correlations with code share, OLS fits
`value ~ C(web_source) + code_share` per benchmark and pooled, and the reversal check with a bootstrap
interval over benchmarks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from tqdm.auto import tqdm

from ..errors import BadValue
from .stats import LEVEL, N_BOOT, SEED, bootstrap_indices, correlate, percentile_interval
from .tables import CATEGORIES, check_columns, mixture_attributes, mixture_matrix, mixture_means, sort_like


def code_share_effects(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    method: str = "pearson",
    categories: Sequence[str] = CATEGORIES,
    **options,
) -> pd.DataFrame:
    """corr(metric, code share) across the 9 mixtures per (scale, stage, benchmark).

    The paper reported bare coefficients (HellaSwag -0.94 / -0.80, MNLI +0.12 -> -0.68); we add the
    permutation p (exact for independence) and intervals. Code share takes three values, so read r as a trend over 25/35/45%.

    Columns: scale, stage, category, benchmark, metric, n, r, p, ci_low, ci_high, ... (`stats.correlate`).
    """
    matrix = mixture_matrix(scores, metric, categories)
    share = mixture_attributes(scores).loc[matrix.columns, "code_share"].to_numpy(float)
    rows = [
        {
            "scale": scale,
            "stage": stage,
            "category": category,
            "benchmark": benchmark,
            "metric": metric,
            **correlate(values, share, method, **options),
        }
        for (scale, stage, category, benchmark), values in tqdm(
            list(zip(matrix.index, matrix.to_numpy(float), strict=True)), desc="code share", leave=False
        )
    ]
    return pd.DataFrame(rows)


def _web_term(reference: str) -> str:
    return f"C(web_source, Treatment(reference={reference!r}))"


def _tidy_fit(fit, reference: str, level: float) -> pd.DataFrame:
    """One row per coefficient, with readable names (web_source[V2] rather than patsy's)."""
    ci = fit.conf_int(alpha=1 - level)
    names = [
        name.replace(f"{_web_term(reference)}[T.", "web_source[").replace("[T.", "[")
        for name in fit.params.index
    ]
    return pd.DataFrame(
        {
            "term": names,
            "coef": fit.params.to_numpy(),
            "se": fit.bse.to_numpy(),
            "p": fit.pvalues.to_numpy(),
            "ci_low": ci[0].to_numpy(),
            "ci_high": ci[1].to_numpy(),
        }
    )


def web_source_effects(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    reference: str = "V1",
    categories: Sequence[str] = CATEGORIES,
    level: float = LEVEL,
) -> pd.DataFrame:
    """OLS `value ~ C(web_source) + code_share` on each benchmark's 9 mixtures, per (scale, stage).

    The paper compared web sources by mean differences; a regression separates the web source from the
    code share it is mixed with, and gives each effect an interval.

    Coefficients are differences from the `reference` web source and the change per unit code share
    (0.25 -> 0.45 is 0.2 units). With 9 points and 4 parameters there are 5 residual degrees of freedom,
    so intervals are wide. Columns: scale, stage, category, benchmark, metric, term, coef, se, p, ci_low,
    ci_high, n, r2.
    """
    means = mixture_means(scores, metric, categories)
    check_columns(means, ["web_source", "code_share"], "web_source_effects")
    formula = f"value ~ {_web_term(reference)} + code_share"
    frames = []
    for (scale, stage, category, benchmark), cell in means.groupby(
        ["scale", "stage", "category", "benchmark"], sort=False
    ):
        fit = smf.ols(formula, data=cell).fit()
        frames.append(
            _tidy_fit(fit, reference, level).assign(
                scale=scale,
                stage=stage,
                category=category,
                benchmark=benchmark,
                metric=metric,
                n=int(fit.nobs),
                r2=fit.rsquared,
            )
        )
    columns = [
        "scale",
        "stage",
        "category",
        "benchmark",
        "metric",
        "term",
        "coef",
        "se",
        "p",
        "ci_low",
        "ci_high",
        "n",
        "r2",
    ]
    return pd.concat(frames, ignore_index=True)[columns]


def pooled_effects(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    reference: str = "V1",
    by: str | Sequence[str] = "stage",
    formula: str | None = None,
    categories: Sequence[str] = CATEGORIES,
    level: float = LEVEL,
) -> pd.DataFrame:
    """One OLS over all benchmarks (and scales) per group of `by`: web source and code share effects.

    Default formula: value ~ C(web_source) + code_share + C(benchmark) + C(scale); benchmark fixed
    effects absorb the category terms (and each benchmark's own level), and the scale term is dropped
    with one scale. Rows sharing a mixture are not independent, so standard errors are clustered by
    mixture (only 9 clusters: read them as approximate). Columns: the `by` keys, metric, term, coef, se,
    p, ci_low, ci_high, n, r2, formula.
    """
    means = mixture_means(scores, metric, categories)
    check_columns(means, ["web_source", "code_share"], "pooled_effects")
    by = [by] if isinstance(by, str) else list(by)
    frames = []
    for key, cell in means.groupby(by, sort=False):
        terms = [_web_term(reference), "code_share"] + [
            f"C({c})" for c in ("benchmark", "scale") if c not in by and cell[c].nunique() > 1
        ]
        used = formula or "value ~ " + " + ".join(terms)
        groups = pd.factorize(cell["mixture"])[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns about few clusters; the docstring says so
            fit = smf.ols(used, data=cell).fit(cov_type="cluster", cov_kwds={"groups": groups})
        key = key if isinstance(key, tuple) else (key,)
        frames.append(
            _tidy_fit(fit, reference, level).assign(
                **dict(zip(by, key, strict=True)),
                metric=metric,
                n=int(fit.nobs),
                r2=fit.rsquared,
                formula=used,
            )
        )
    table = pd.concat(frames, ignore_index=True)
    return table[by + ["metric", "term", "coef", "se", "p", "ci_low", "ci_high", "n", "r2", "formula"]]


def reversal_check(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    treated: str = "V2",
    reference: str = "V1",
    categories: Sequence[str] = CATEGORIES,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> pd.DataFrame:
    """Mean treated - reference difference per (stage, scale, category), and whether its sign flips.

    Differences are paired by proportions (V2-P0 minus V1-P0, ...), averaged per benchmark, then over the
    category's benchmarks; the interval resamples benchmarks. `reverses` is True for every row of a
    (stage, category) whose differences have both signs across scales (the paper's NLI +5.0 pp -> -4.4 pp).
    Columns: stage, scale, category, metric, treated, reference, n_benchmarks, difference_pp, ci_low_pp,
    ci_high_pp, sign, reverses.
    """
    means = mixture_means(scores, metric, categories)
    check_columns(means, ["web_source", "proportions"], "reversal_check")
    sources = set(means["web_source"])
    if not {treated, reference} <= sources:
        raise BadValue(
            f"web sources {treated!r} and {reference!r} must both be in the table (it has "
            f"{sorted(sources)}); pass treated= and reference= from those"
        )
    wide = means.pivot_table(
        index=["stage", "scale", "category", "benchmark", "proportions"],
        columns="web_source",
        values="value",
        sort=False,
    )
    per_benchmark = (
        (wide[treated] - wide[reference])
        .groupby(["stage", "scale", "category", "benchmark"], sort=False)
        .mean()
    )
    rows = []
    for (stage, scale, category), differences in per_benchmark.groupby(
        ["stage", "scale", "category"], sort=False
    ):
        values = differences.to_numpy(float)
        boot = values[bootstrap_indices(len(values), n_boot, seed)].mean(axis=1)
        low, high, _ = percentile_interval(boot, level)
        mean = float(values.mean())
        rows.append(
            {
                "stage": stage,
                "scale": scale,
                "category": category,
                "metric": metric,
                "treated": treated,
                "reference": reference,
                "n_benchmarks": len(values),
                "difference_pp": 100 * mean,
                "ci_low_pp": 100 * low,
                "ci_high_pp": 100 * high,
                "sign": int(np.sign(mean)),
            }
        )
    table = sort_like(pd.DataFrame(rows), scores, categories)
    signs = table.groupby(["stage", "category"], sort=False)["sign"]
    table["reverses"] = signs.transform("max").eq(1) & signs.transform("min").eq(-1)
    return table
