"""The paper's three recommendations as claims a study can test, each with an estimate, a test and a verdict.

The paper advises: (1) choose benchmarks by measured transfer and by category aggregate; (2) treat
confidence as a complementary signal; (3) validate mixture decisions at two or more scales. Each becomes
one or more claims with a direction, and each claim gets the same verdict rule (`verdict`): "supported"
when its test rejects at `alpha` in the claimed direction, "not supported" when it rejects in the
opposite direction, and "inconclusive" otherwise. With 9 mixtures most effects of the paper's size do
not reject, so "inconclusive" is the honest default, not a failure of the study.

- transfer is a property of the benchmark: a benchmark's cross-stage r at one scale predicts its r at the
  next (Spearman across benchmarks; `transfer_stability`);
- the category aggregate transfers better than its members: the category-mean score's cross-stage r
  against the mean r of its benchmarks, per (scale, category), pooled with a sign test
  (`aggregate_advantage`; the cells share mixtures, so the sign test is approximate);
- PT confidence adds to PT accuracy: in `z(acc_SFT) ~ z(acc_PT) + z(conf_PT)` per scale, each benchmark's
  vectors z-scored across mixtures, the confidence slope is positive (`confidence_increment`; standard
  errors clustered by mixture, only 9 clusters);
- mixture decisions carry across scales: corr(category-mean SFT score at one scale, at the next) across
  mixtures (`scale_agreement`); the recommendation to validate at two scales is supported where this
  fails, i.e. where the rankings disagree.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as sps

from ..results import RUN_KEYS
from .multitest import adjust_pvalues
from .stats import correlate
from .tables import CATEGORIES, KEYS, as_tuple, check_columns, mixture_matrix, scale_order, select
from .transfer import category_transfer, transfer_table

ALPHA = 0.05
VERDICTS = ("supported", "not supported", "inconclusive")
AGGREGATE = " (mean)"  # suffix of a category aggregate's benchmark name
# Columns that identify a run (kept by category_aggregates); other per-benchmark columns are averaged away.


def verdict(estimate: float, p: float, direction: int = 1, alpha: float = ALPHA) -> str:
    """'supported' if p < alpha with sign(estimate) == direction, 'not supported' if p < alpha against it,
    'inconclusive' otherwise (including a missing estimate or p)."""
    if not (np.isfinite(estimate) and np.isfinite(p)) or p >= alpha or estimate == 0:
        return "inconclusive"
    return "supported" if np.sign(estimate) == direction else "not supported"


def category_aggregates(
    scores: pd.DataFrame,
    metrics: str | Sequence[str] = ("accuracy", "confidence"),
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """A scores table with one pseudo-benchmark per category, "<category> (mean)": the mean of `metrics`
    over the category's benchmarks for every (mixture, scale, stage, seed). Any protocol accepts it."""
    metrics = list(as_tuple(metrics))
    check_columns(scores, KEYS + ["mixture", "seed", *metrics], "category_aggregates")
    keys = [c for c in scores.columns if c in RUN_KEYS]
    table = scores.groupby(keys + ["category"], sort=False, dropna=False)[metrics].mean().reset_index()
    table["benchmark"] = table["category"] + AGGREGATE
    order = {c: i for i, c in enumerate(list(categories) + sorted(set(table["category"]) - set(categories)))}
    return table.sort_values("category", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def transfer_stability(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    method: str = "spearman",
    scales: Sequence[str] | None = None,
    **options,
) -> pd.DataFrame:
    """Do benchmarks that transfer well at one scale transfer well at the next? corr across benchmarks of
    their cross-stage Pearson r, per pair of consecutive scales (benchmarks with an undefined r dropped).

    Scales are ordered by n_params or `scales` (small to large), never by row order.
    Columns: metric, scale_from, scale_to, n_benchmarks, r, p, ci_low, ci_high, verdict.
    """
    transfer = transfer_table(scores, metric, "pearson", **options)
    scales = scale_order(scores, scales)
    rows = []
    for small, large in zip(scales, scales[1:], strict=False):
        pair = (
            transfer[transfer["scale"].isin([small, large])]
            .pivot_table(index="benchmark", columns="scale", values="r", sort=False)
            .dropna()
        )
        if len(pair) < 3:
            stats = {"r": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan}
        else:
            stats = correlate(pair[small].to_numpy(), pair[large].to_numpy(), method, **options)
        rows.append(
            {
                "metric": metric,
                "scale_from": small,
                "scale_to": large,
                "n_benchmarks": len(pair),
                **{k: stats[k] for k in ("r", "p", "ci_low", "ci_high")},
                "verdict": verdict(stats["r"], stats["p"]),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "scale_from", "scale_to", "n_benchmarks", "r", "p", "ci_low",
                                       "ci_high", "verdict"])


def aggregate_advantage(
    scores: pd.DataFrame, metric: str = "accuracy", categories: Sequence[str] = CATEGORIES, **options
) -> pd.DataFrame:
    """Per (scale, category): the aggregate's cross-stage r (with p and interval) against the mean r of
    the category's benchmarks, and `advantage` = the first minus the second.

    Columns: scale, category, n_benchmarks, aggregate_r, aggregate_p, aggregate_ci_low, aggregate_ci_high,
    members_r, advantage.
    """
    aggregate = transfer_table(category_aggregates(scores, metric, categories), metric, "pearson", **options)
    members = category_transfer(scores, metric, "pearson", categories, **options)
    members = members[members["category"].isin(aggregate["category"])]
    table = aggregate.merge(members[["scale", "category", "n_benchmarks", "mean_r"]], on=["scale", "category"])
    table = table.rename(
        columns={"r": "aggregate_r", "p": "aggregate_p", "ci_low": "aggregate_ci_low",
                 "ci_high": "aggregate_ci_high", "mean_r": "members_r"}
    )
    table["advantage"] = table["aggregate_r"] - table["members_r"]
    return table[["scale", "category", "n_benchmarks", "aggregate_r", "aggregate_p", "aggregate_ci_low",
                  "aggregate_ci_high", "members_r", "advantage"]]


def sign_test(differences: Sequence[float]) -> dict:
    """Two-sided binomial sign test of `differences` (zeros and NaN dropped): n, positive, p, verdict."""
    values = np.asarray(differences, dtype=float)
    values = values[np.isfinite(values) & (values != 0)]
    positive = int((values > 0).sum())
    p = float(sps.binomtest(positive, len(values)).pvalue) if len(values) else np.nan
    share = positive / len(values) - 0.5 if len(values) else np.nan
    return {"n": len(values), "positive": positive, "p": p, "verdict": verdict(share, p)}


def confidence_increment(
    scores: pd.DataFrame, metric: str = "accuracy", categories: Sequence[str] = CATEGORIES
) -> pd.DataFrame:
    """Does PT confidence predict SFT `metric` beyond PT `metric`? One OLS per scale over all benchmarks:
    z(SFT) ~ z(PT) + z(conf_PT), each benchmark's vectors z-scored across mixtures (benchmarks with a
    constant vector dropped), standard errors clustered by mixture.

    Columns: scale, term ("pt_score" or "pt_confidence"), coef, se, p, ci_low, ci_high, n, n_benchmarks,
    verdict (of the confidence term; a positive slope is the claim).
    """
    score, confidence = (mixture_matrix(scores, m, categories) for m in (metric, "confidence"))
    rows = []
    for scale in scale_order(scores, required=False):  # one fit per scale: no number depends on the order
        pt = select(score, scale=scale, stage="PT")
        sft = select(score, scale=scale, stage="SFT").reindex(pt.index)
        conf = select(confidence, scale=scale, stage="PT").reindex(pt.index)
        frames = [
            pd.DataFrame({"sft": _z(sft.loc[b]), "pt_score": _z(pt.loc[b]), "pt_confidence": _z(conf.loc[b]),
                          "mixture": pt.columns})
            for b in pt.index
        ]
        data = pd.concat(frames, ignore_index=True).dropna() if frames else pd.DataFrame()
        n_benchmarks = len(data) // pt.shape[1] if len(data) else 0
        if n_benchmarks < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few clusters: the docstring says so
            fit = smf.ols("sft ~ pt_score + pt_confidence", data=data).fit(
                cov_type="cluster", cov_kwds={"groups": pd.factorize(data["mixture"])[0]}
            )
        ci = fit.conf_int()
        for term in ("pt_score", "pt_confidence"):
            rows.append(
                {
                    "scale": scale,
                    "term": term,
                    "coef": fit.params[term],
                    "se": fit.bse[term],
                    "p": fit.pvalues[term],
                    "ci_low": ci.loc[term, 0],
                    "ci_high": ci.loc[term, 1],
                    "n": int(fit.nobs),
                    "n_benchmarks": n_benchmarks,
                    "verdict": verdict(fit.params[term], fit.pvalues[term]) if term == "pt_confidence" else "",
                }
            )
    return pd.DataFrame(rows, columns=["scale", "term", "coef", "se", "p", "ci_low", "ci_high", "n",
                                       "n_benchmarks", "verdict"])


def _z(values: pd.Series) -> pd.Series:
    """Values z-scored; all NaN when constant (no ranking to predict)."""
    values = values.astype(float).reset_index(drop=True)
    sd = values.std(ddof=0)
    return (values - values.mean()) / sd if sd > 0 else values * np.nan


def scale_agreement(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    stage: str = "SFT",
    categories: Sequence[str] = CATEGORIES,
    scales: Sequence[str] | None = None,
    **options,
) -> pd.DataFrame:
    """Do mixture rankings carry from one scale to the next? Per category aggregate: corr across mixtures
    of the `stage` score at consecutive scales, and the best mixture at each scale (ties: the first by
    name).

    Columns: category, benchmark, stage, scale_from, scale_to, n, r, p, ci_low, ci_high, best_from,
    best_to, same_best, verdict ("supported" = rankings agree; the chapter reads it against the
    recommendation, which expects disagreement).
    """
    matrix = mixture_matrix(category_aggregates(scores, metric, categories), metric, categories)
    scales = scale_order(scores, scales)  # n_params or `scales`, never row order
    rows = []
    for small, large in zip(scales, scales[1:], strict=False):
        before = select(matrix, scale=small, stage=stage)
        after = select(matrix, scale=large, stage=stage).reindex(before.index)
        for (category, benchmark), x, y in zip(before.index, before.to_numpy(float), after.to_numpy(float),
                                              strict=True):
            stats = correlate(x, y, "pearson", **options)
            best_from, best_to = before.columns[np.argmax(x)], before.columns[np.argmax(y)]
            rows.append(
                {
                    "category": category,
                    "benchmark": benchmark,
                    "stage": stage,
                    "scale_from": small,
                    "scale_to": large,
                    **{k: stats[k] for k in ("n", "r", "p", "ci_low", "ci_high")},
                    "best_from": best_from,
                    "best_to": best_to,
                    "same_best": best_from == best_to,
                    "verdict": verdict(stats["r"], stats["p"]),
                }
            )
    return pd.DataFrame(rows)


def overall(verdicts: Sequence[str]) -> str:
    """Several tests of one claim: 'supported' only if every test supports it, 'not supported' only if
    every test goes against it, else 'inconclusive' (an intersection-union rule: no multiplicity penalty
    is needed, and the combined p is the largest p)."""
    verdicts = set(verdicts)
    if verdicts == {"supported"}:
        return "supported"
    if verdicts == {"not supported"}:
        return "not supported"
    return "inconclusive"


def recommendation_summary(
    stability: pd.DataFrame,
    advantage: pd.DataFrame,
    increment: pd.DataFrame,
    agreement: pd.DataFrame,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per tested claim, from the tables of `transfer_stability`, `aggregate_advantage`,
    `confidence_increment` and `scale_agreement`.

    Claims tested at several scales (or scale pairs) combine by `overall`; their estimate is the mean and
    their p the largest. Validation at two scales is supported when some category's mixture ranking is
    significantly reversed between scales (Holm over categories; estimate the lowest r, p its adjusted
    p), not supported when every category's ranking agrees significantly (largest p), else inconclusive.
    A table without the rows a claim needs (one scale) gives that claim "inconclusive" with NaN.
    Columns: recommendation, claim, test, n_tests, estimate_is (what the estimate is), estimate, p, verdict.
    """
    rows = []

    def add(recommendation, claim, test, n_tests, estimate_is, estimate, p, result):
        rows.append({"recommendation": recommendation, "claim": claim, "test": test, "n_tests": n_tests,
                     "estimate_is": estimate_is, "estimate": estimate, "p": p,
                     "verdict": result if n_tests else "inconclusive"})

    by_measured = "choose benchmarks by measured transfer"
    add(by_measured, "a benchmark's cross-stage r at one scale predicts its r at the next",
        "Spearman across benchmarks, permutation p", len(stability), "mean rank correlation", stability["r"].mean(),
        stability["p"].max(), overall(stability["verdict"]))
    signs = sign_test(advantage["advantage"])
    add("choose benchmarks by category aggregate",
        "a category's mean score transfers better than its benchmarks do on average",
        "sign test over (scale, category) cells", signs["n"], "share of cells the aggregate wins",
        signs["positive"] / signs["n"] if signs["n"] else np.nan, signs["p"], signs["verdict"])
    confidence = increment[increment["term"] == "pt_confidence"]
    add("treat confidence as a complementary signal",
        "PT confidence predicts SFT accuracy beyond PT accuracy (positive partial slope)",
        "OLS on z-scores per scale, SEs clustered by mixture", len(confidence), "mean confidence slope",
        confidence["coef"].mean(),
        confidence["p"].max(), overall(confidence["verdict"]))
    add(*_validation(agreement, alpha))
    return pd.DataFrame(rows)


def _validation(agreement: pd.DataFrame, alpha: float) -> tuple:
    """The arguments of `add` for 'validate mixture decisions at two or more scales' (see the docstring)."""
    head = (
        "validate mixture decisions at two or more scales",
        "the mixture ranking of some category does not carry from one scale to the next",
        "corr of category-mean SFT scores across scales, permutation p (Holm over categories)",
        len(agreement),
        "lowest cross-scale r",
    )
    if agreement.empty or agreement["r"].isna().all():
        return *head, np.nan, np.nan, "inconclusive"
    adjusted = adjust_pvalues(agreement, methods=("holm",))
    lowest = adjusted.loc[adjusted["r"].idxmin()]
    if verdict(lowest["r"], lowest["p_holm"], direction=-1, alpha=alpha) == "supported":
        return *head, lowest["r"], lowest["p_holm"], "supported"
    agrees = overall(verdict(r, p, alpha=alpha) for r, p in zip(agreement["r"], agreement["p"], strict=True))
    if agrees == "supported":
        return *head, lowest["r"], agreement["p"].max(), "not supported"
    return *head, lowest["r"], lowest["p_holm"], "inconclusive"
