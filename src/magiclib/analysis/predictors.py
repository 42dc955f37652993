"""RQ2: which benchmarks predict post-SFT results, and which mislead? Rankings, decision accuracy, sign flips.

The paper named reliable predictors (HellaSwag, PIQA, COPA, ARC-Easy, SciQ) and unreliable ones (WiC, MNLI,
WinoGrande) by their cross-stage r. A practitioner's question is narrower: if I pick the better of two
mixtures by its PT score, how often is it also better after SFT? That is decision accuracy, the share of
mixture pairs ordered the same way at both stages. Ties need a rule, and the two rules differ:

- ties="drop": pairs tied at either stage are left out; equals (1 + Goodman-Kruskal gamma) / 2;
- ties="half": tied pairs count 1/2 (a coin flip decides a tie); equals (1 + Kendall tau-a) / 2.

Without ties both equal (1 + Kendall tau) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import BadValue
from .multitest import adjust_pvalues
from .stats import correlate
from .tables import CATEGORIES, mixture_matrix, scale_order, stage_pairs, with_scale_sizes

TIE_RULES = ("drop", "half")


def decision_accuracy(x, y, ties: str = "half") -> float:
    """Share of pairs (i, j) ordered the same by x and by y; ties per `ties` (see the module text)."""
    if ties not in TIE_RULES:
        raise BadValue(
            f"unknown tie rule {ties!r}; use 'drop' (leave tied pairs out) or 'half' (count 1/2)"
        )
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise BadValue(
            f"x and y must be 1-D, equally long and of length >= 2; got shapes {x.shape}, {y.shape}"
        )
    i, j = np.triu_indices(len(x), 1)
    agreement = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    same, opposite = np.count_nonzero(agreement > 0), np.count_nonzero(agreement < 0)
    if ties == "half":
        return float((same + 0.5 * (len(i) - same - opposite)) / len(i))
    return float(same / (same + opposite)) if same + opposite else float("nan")


def _verdict(r: float, p: float, alpha: float) -> str:
    if not p < alpha:
        return "uncertain"
    return "robust" if r > 0 else "reversed"


ADJUSTMENTS = ("holm", "bh")


def predictor_ranking(
    scores: pd.DataFrame,
    metric: str = "accuracy",
    method: str = "pearson",
    ties: str = "half",
    alpha: float = 0.05,
    categories: Sequence[str] = CATEGORIES,
    adjust: str = "holm",
    **options,
) -> pd.DataFrame:
    """Benchmarks ranked as predictors of their own post-SFT results, per scale.

    The paper ranked benchmarks by r alone; we add the permutation p, intervals, decision accuracy and a
    verdict. A table of 20 benchmarks x 2 scales is 40 tests, so the verdict uses p-values adjusted over
    all of them (`adjust`: "holm", family-wise, or "bh", false discovery rate; `multitest.adjust_pvalues`).

    Columns: scale, n_params (when the scores have it), metric, category, benchmark, method, n, r, p,
    ci_low, ci_high, ..., decision_accuracy, p_<adjust>, rank (1 = highest r at that scale) and verdict:
    "robust" (r > 0 with adjusted p < alpha), "reversed" (r < 0, adjusted p < alpha) or "uncertain".
    The verdict uses p rather than the interval. `options` go to `stats.correlate`.
    """
    if adjust not in ADJUSTMENTS:
        raise BadValue(f"unknown adjustment {adjust!r}; use one of {list(ADJUSTMENTS)}")
    rows = []
    for scale, category, benchmark, pt, sft in stage_pairs(mixture_matrix(scores, metric, categories)):
        row = {
            "scale": scale,
            "metric": metric,
            "category": category,
            "benchmark": benchmark,
            **correlate(pt, sft, method, **options),
            "decision_accuracy": decision_accuracy(pt, sft, ties),
        }
        rows.append(row)
    table = adjust_pvalues(pd.DataFrame(rows), methods=(adjust,))
    adjusted = f"p_{adjust}"
    table["verdict"] = [_verdict(r, p, alpha) for r, p in zip(table["r"], table[adjusted], strict=True)]
    table.insert(
        len(table.columns) - 1,
        "rank",
        table.groupby("scale", sort=False)["r"].rank(ascending=False, method="min").astype("Int64"),
    )
    scale_position = {s: i for i, s in enumerate(pd.unique(table["scale"]))}
    table = table.sort_values("rank", kind="stable")
    table = table.sort_values("scale", key=lambda c: c.map(scale_position), kind="stable")
    return with_scale_sizes(table.reset_index(drop=True), scores)


def sign_flips(
    table: pd.DataFrame,
    keys: Sequence[str] = ("metric", "method", "category", "benchmark"),
    value: str = "r",
    scales: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare each benchmark's coefficient between consecutive scales, small to large.

    Takes any table with a scale column, the `keys`, `value` and ci_low/ci_high (e.g. `transfer_table` or
    `predictor_ranking`, which carry n_params). The order of scales is `scales` or the table's n_params,
    never its row order (`tables.scale_order`). Columns: keys, scale_from, scale_to, r_from, r_to, flips
    (the signs differ), confident_flip (both intervals exclude 0, on opposite sides; only intervals the
    table marks reliable count, `ci_reliable`, so a flip between heavily tied or |r| = 1 vectors is never
    confident). The paper: WinoGrande -0.31 -> 0.32, MNLI -0.34 -> 0.53.
    """
    missing = [c for c in ["scale", value, "ci_low", "ci_high", *keys] if c not in table.columns]
    if missing:
        raise BadValue(f"sign_flips needs columns {missing}; pass a table such as transfer_table(...)")
    scales = scale_order(table, scales)
    indexed = table.set_index(["scale", *keys])
    rows = []
    for small, large in zip(scales, scales[1:], strict=False):
        before, after = indexed.loc[small], indexed.loc[large]
        for key in before.index.intersection(after.index, sort=False):
            a, b = before.loc[key], after.loc[key]
            flips = bool(np.sign(a[value]) * np.sign(b[value]) < 0)
            reliable = bool(a.get("ci_reliable", True)) and bool(b.get("ci_reliable", True))
            opposite = (a["ci_low"] > 0 and b["ci_high"] < 0) or (a["ci_high"] < 0 and b["ci_low"] > 0)
            key = key if isinstance(key, tuple) else (key,)
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "scale_from": small,
                    "scale_to": large,
                    f"{value}_from": a[value],
                    f"{value}_to": b[value],
                    "flips": flips,
                    "confident_flip": bool(reliable and opposite),
                }
            )
    return pd.DataFrame(rows)
