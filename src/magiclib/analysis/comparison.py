"""Every number the paper reports, beside ours computed the same way, and whether the two agree.

`paper_numbers()` lists what the paper reports; this module computes each quantity on our scores with the
protocol that defines it (`category_transfer`, `transfer_table`, `coherence_means`, `matrix_similarity`,
`alignment`, `alignment_persistence`, `reversal_check`, `code_share_effects`) and lines the two up.

Two choices need stating:

- scales: the paper's 240M and 1B are matched to ours by order (`scale_rank` 0 = our smallest, 1 = our
  largest); with one scale, the 1B numbers have no counterpart;
- unstated details: where the paper does not say which stage (data effects), which axis (r_align,
  persistence) or which kind of coherence (confidence coherence) a number is, every reading is computed,
  one row each, labelled in `reading`. A number "agrees" only reading by reading: counting a number as
  agreeing when any of its readings does would let the choice of reading manufacture agreement.

Agreement is judged two ways: `same_sign` (ours has the paper's sign) and `paper_in_ci` (the paper's
value lies inside our interval, i.e. ours cannot tell them apart). Our intervals are those of the
protocols (Fisher z for a Pearson r, percentile bootstraps over mixtures or benchmarks for means); an
interval its protocol flags as unreliable (`ci_reliable` False: around |r| = 1, or from heavily tied
vectors) is not used, so `paper_in_ci` is NaN there, as it is for quantities without an interval (the
matrix similarity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import BadValue
from .calibration import alignment, alignment_persistence
from .effects import code_share_effects, reversal_check
from .paper import paper_numbers
from .scale import coherence_means, matrix_similarity
from .tables import scale_order
from .transfer import category_transfer, transfer_table

COLUMNS = [
    "number",
    "quantity",
    "metric",
    "category",
    "benchmark",
    "stage",
    "kind",
    "paper_scale",
    "mark",
    "paper",
    "unit",
    "scale",
    "reading",
    "ours",
    "ci_low",
    "ci_high",
    "ci_reliable",
    "p",
    "same_sign",
    "paper_in_ci",
    "note",
]


def _transfer_means(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = category_transfer(scores, ("accuracy", "confidence"), **options)
    return table.rename(columns={"mean_r": "ours"}).assign(benchmark="", stage="", kind="", reading="")


def _transfers(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = transfer_table(scores, "accuracy", "pearson", **options)
    return table.rename(columns={"r": "ours"}).assign(stage="", kind="", reading="")


def _coherence(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = coherence_means(scores, ("accuracy", "confidence"), **_boot_only(options))
    table = table.rename(columns={"mean_r": "ours"}).assign(benchmark="", stage="", p=np.nan)
    # The paper states the kind for accuracy; for confidence each kind is a reading of its own.
    table["reading"] = np.where(table["metric"] == "confidence", "kind " + table["kind"], "")
    return table


def _matrices(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = matrix_similarity(scores, "confidence", seed=options.get("seed", 0))
    return table.rename(columns={"r": "ours", "p_mantel": "p"}).assign(
        category="", benchmark="", stage="", kind="", reading="", ci_low=np.nan, ci_high=np.nan
    )


def _alignments(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = alignment(scores, **options).rename(columns={"r": "ours"})
    return table.assign(benchmark="", kind="", reading="across " + table["axis"], metric="accuracy~confidence")


def _persistence(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = alignment_persistence(scores, **options).rename(columns={"r": "ours"})
    return table.assign(
        benchmark="", stage="", kind="", reading="across " + table["axis"], metric="accuracy~confidence"
    )


def _web_source(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = reversal_check(scores, "accuracy", **_boot_only(options))
    table = table.rename(columns={"difference_pp": "ours", "ci_low_pp": "ci_low", "ci_high_pp": "ci_high"})
    return table.assign(benchmark="", kind="", p=np.nan, reading="at " + table["stage"])


def _code_share(scores: pd.DataFrame, options: dict) -> pd.DataFrame:
    table = code_share_effects(scores, "accuracy", **options).rename(columns={"r": "ours"})
    return table.assign(kind="", reading="at " + table["stage"])


def _boot_only(options: dict) -> dict:
    return {k: v for k, v in options.items() if k in ("n_boot", "level", "seed")}


# quantity of paper_numbers() -> (our computation, the columns a paper row is matched on)
PROTOCOLS: dict[str, tuple[Callable[[pd.DataFrame, dict], pd.DataFrame], list[str]]] = {
    "transfer_mean_r": (_transfer_means, ["metric", "category"]),
    "transfer_r": (_transfers, ["metric", "benchmark"]),
    "coherence_mean_r": (_coherence, ["metric", "category", "kind"]),
    "matrix_similarity_r": (_matrices, ["metric"]),
    "r_align": (_alignments, ["stage", "category"]),
    "alignment_persistence_r": (_persistence, ["category"]),
    "web_source_difference_pp": (_web_source, ["category"]),
    "code_share_r": (_code_share, ["benchmark"]),
}


def _our_scale(scales: list[str], rank: int) -> str | None:
    """The paper's smaller scale is our smallest, its larger one our largest (None with one scale)."""
    if rank == 0:
        return scales[0]
    return scales[-1] if len(scales) > 1 else None


def compare_with_paper(
    scores: pd.DataFrame,
    paper: pd.DataFrame | None = None,
    scales: Sequence[str] | None = None,
    **options,
) -> pd.DataFrame:
    """One row per (paper number, reading): the paper's value beside ours, with agreement columns.

    `number` is the paper row's index in `paper`, so the readings of one number share it. `paper`
    defaults to `paper_numbers()`; `scales` (small to large) orders our scales where the table has no
    n_params; `options` (n_boot, level, seed, ...) go to the protocols. A paper
    number without a counterpart (no matching scale, stage or benchmark in our table) keeps one row with
    `ours` NaN and a note saying why, as does a reading whose correlation is undefined (a constant
    vector). Columns: see COLUMNS.
    """
    paper = paper_numbers() if paper is None else paper
    unknown = sorted(set(paper["quantity"]) - set(PROTOCOLS))
    if unknown:
        raise BadValue(
            f"no protocol computes quantity(ies) {unknown}; known: {sorted(PROTOCOLS)}. "
            "Add one to comparison.PROTOCOLS or drop those rows"
        )
    scales = scale_order(scores, scales)  # n_params or `scales` (small to large), never row order
    rows = []
    for quantity, numbers in paper.groupby("quantity", sort=False):
        compute, keys = PROTOCOLS[quantity]
        ours = compute(scores, options)
        for index, number in numbers.iterrows():
            scale = _our_scale(scales, int(number["scale_rank"]))
            base = {
                "number": index,
                "quantity": quantity,
                **{k: number[k] for k in ("metric", "category", "benchmark", "stage", "kind", "mark", "unit")},
                "paper_scale": number["scale"],
                "paper": float(number["value"]),
                "scale": scale,
                "note": number["note"],
            }
            match = ours[ours["scale"].eq(scale)] if scale is not None else ours.iloc[:0]
            for key in keys:  # an empty paper field is unstated: every value of ours is a reading
                if number[key] != "":
                    match = match[match[key].eq(number[key])]
            if match.empty:
                why = "no matching scale" if scale is None else "not in our results"
                rows.append(base | {"reading": "", "ours": np.nan, "note": _join(number["note"], why)})
                continue
            for _, mine in match.iterrows():
                undefined = "" if pd.notna(mine["ours"]) else "ours undefined (a constant score vector)"
                rows.append(
                    base
                    | {k: mine[k] for k in ("reading", "ours", "ci_low", "ci_high", "p")}
                    # protocols without the flag give intervals of differences of means, never degenerate
                    | {"ci_reliable": bool(mine.get("ci_reliable", pd.notna(mine["ci_low"])))}
                    | {k: number[k] or mine[k] for k in ("stage", "kind")}
                    | ({"note": _join(number["note"], undefined)} if undefined else {})
                )
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    computed = table["ours"].notna()
    table["same_sign"] = (np.sign(table["ours"]) == np.sign(table["paper"])).where(computed)
    has_ci = computed & table["ci_low"].notna() & table["ci_high"].notna() & table["ci_reliable"].eq(True)
    inside = (table["ci_low"] <= table["paper"]) & (table["paper"] <= table["ci_high"])
    table["paper_in_ci"] = inside.where(has_ci)
    return table


def _join(note: str, addition: str) -> str:
    return f"{note}; {addition}" if note else addition


def agreement_summary(comparison: pd.DataFrame, by: str = "quantity") -> pd.DataFrame:
    """Per group of `by` (and overall, "all"): paper numbers, rows computed, and how many agree.

    Columns: the `by` key, numbers (paper values), rows (value x reading), computed (rows with ours),
    same_sign (of those), with_ci (computed rows with a reliable interval), paper_in_ci (of those), and the two
    shares same_sign / computed and paper_in_ci / with_ci.
    """
    def summarise(group: pd.DataFrame) -> dict:
        computed = group[group["ours"].notna()]
        with_ci = computed[computed["paper_in_ci"].notna()]
        same, inside = int(computed["same_sign"].sum()), int(with_ci["paper_in_ci"].sum())
        return {
            "numbers": group["number"].nunique(),
            "rows": len(group),
            "computed": len(computed),
            "same_sign": same,
            "with_ci": len(with_ci),
            "paper_in_ci": inside,
            "same_sign_share": same / len(computed) if len(computed) else np.nan,
            "paper_in_ci_share": inside / len(with_ci) if len(with_ci) else np.nan,
        }

    rows = [{by: key, **summarise(group)} for key, group in comparison.groupby(by, sort=False)]
    rows.append({by: "all", **summarise(comparison)})
    return pd.DataFrame(rows)
