"""The numbers the paper reports, as a tidy table that chapters put beside ours.

Transcribed from ../shared/PAPER.md ("Reported numbers"). `mark` says where each number comes from:
"P" the paper's own text (abstract, introduction, Figure 1 caption), "S" secondary write-ups of the full
paper (approximate; say so when quoting). The paper's scales are 240M and 1B; `scale_rank` (0 = smaller)
lines them up with ours by order, since our scales are smaller. Benchmarks use our registry names.
Columns: quantity, metric, scale, scale_rank, stage, category, kind, benchmark, value, unit, mark,
provenance, note. Empty fields mean the paper does not say (or the quantity has no such axis).
"""

from __future__ import annotations

import pandas as pd

from .tables import CATEGORIES

SOURCE = "PAPER.md, Reported numbers (arXiv 2602.11217)"
SCALES = ("240M", "1B")
COLUMNS = [
    "quantity",
    "metric",
    "scale",
    "scale_rank",
    "stage",
    "category",
    "kind",
    "benchmark",
    "value",
    "unit",
    "mark",
    "provenance",
    "note",
]


def _pair(
    quantity: str, values: tuple[float | None, float | None], mark: str, note: str = "", **fields
) -> list[dict]:
    """One row per paper scale with a reported value (240M first)."""
    return [
        {
            "quantity": quantity,
            "scale": scale,
            "scale_rank": rank,
            "value": value,
            "mark": mark,
            "note": note,
            **fields,
        }
        for rank, (scale, value) in enumerate(zip(SCALES, values, strict=True))
        if value is not None
    ]


def _rows() -> list[dict]:
    rows = []
    transfer = {"quantity": "transfer_mean_r", "unit": "r"}
    rows += _pair(
        values=(0.49, 0.60),
        mark="S",
        metric="accuracy",
        category="all",
        note="one source gives 0.51 at 240M",
        **transfer,
    )
    rows += _pair(values=(0.68, 0.39), mark="S", metric="confidence", category="all", **transfer)
    rows += _pair(values=(0.87, 0.40), mark="P", metric="confidence", category="commonsense", **transfer)
    rows += _pair(values=(0.82, 0.49), mark="P", metric="confidence", category="science", **transfer)
    rows += _pair(values=(0.21, None), mark="S", metric="confidence", category="nli", **transfer)
    for benchmark, category, values in [
        ("wic", "semantic", (-0.07, -0.43)),
        ("multirc", "semantic", (0.11, 0.26)),
        ("winogrande", "commonsense", (-0.31, 0.32)),
        ("mnli", "nli", (-0.34, 0.53)),
    ]:
        rows += _pair(
            "transfer_r", values, "S", metric="accuracy", category=category, benchmark=benchmark, unit="r"
        )
    for kind, values in [("PT-PT", (0.24, 0.50)), ("SFT-SFT", (-0.19, 0.17)), ("PT-SFT", (-0.15, 0.25))]:
        rows += _pair(
            "coherence_mean_r", values, "S", metric="accuracy", category="science", kind=kind, unit="r"
        )
    for category, values in [("commonsense", (0.73, 0.24)), ("science", (0.85, 0.58))]:
        rows += _pair(
            "coherence_mean_r",
            values,
            "S",
            metric="confidence",
            category=category,
            unit="r",
            note="which kind (PT-PT, SFT-SFT, PT-SFT) is not stated; NLI is the only category that rises",
        )
    rows += _pair(
        "matrix_similarity_r",
        (0.73, None),
        "S",
        metric="confidence",
        unit="r",
        note="PT vs SFT 20x20 heatmaps, p < 1e-32 (entries treated as independent)",
    )
    align = {
        "PT": [(0.05, -0.12), (0.75, 0.81), (0.35, -0.12), (-0.18, -0.06)],
        "SFT": [(0.04, -0.16), (0.80, 0.83), (0.25, 0.39), (-0.37, -0.16)],
    }
    for stage, per_category in align.items():
        for category, values in zip(CATEGORIES, per_category, strict=True):
            rows += _pair(
                "r_align",
                values,
                "S",
                metric="accuracy~confidence",
                stage=stage,
                category=category,
                unit="r",
                note="axis (benchmarks or mixtures) not stated",
            )
    for category, values in [
        ("commonsense", (0.73, 0.54)),
        ("science", (0.62, 0.31)),
        ("nli", (-0.41, -0.40)),
        ("semantic", (0.50, 0.27)),
    ]:
        rows += _pair(
            "alignment_persistence_r",
            values,
            "S",
            metric="accuracy~confidence",
            category=category,
            unit="r",
            note="definition not stated",
        )
    for category, values in [("nli", (5.0, -4.4)), ("science", (2.1, 2.5))]:
        rows += _pair(
            "web_source_difference_pp",
            values,
            "S",
            metric="accuracy",
            category=category,
            unit="pp",
            note="FineWeb-Edu (V2) minus RefinedWeb (V1); stage not stated",
        )
    code = {"quantity": "code_share_r", "metric": "accuracy", "unit": "r", "note": "stage not stated"}
    for benchmark, category, values in [
        ("hellaswag", "commonsense", (-0.94, -0.80)),
        ("mnli", "nli", (0.12, -0.68)),
        ("piqa", "commonsense", (None, -0.77)),
        ("social_iqa", "commonsense", (None, 0.51)),
        ("boolq", "commonsense", (None, 0.35)),
        ("qnli", "nli", (None, -0.53)),
        ("rte", "nli", (None, 0.25)),
    ]:
        scale_note = "" if values[0] is not None else "; PAPER.md lists it under 1B only"
        rows += _pair(
            values=values,
            mark="S",
            category=category,
            benchmark=benchmark,
            **code | {"note": code["note"] + scale_note},
        )
    return rows


def paper_numbers() -> pd.DataFrame:
    """Every reported number of the paper, one per row (see the module text for the columns)."""
    table = pd.DataFrame(_rows()).assign(provenance=SOURCE)
    return table.reindex(columns=COLUMNS).fillna(
        {c: "" for c in ("stage", "category", "kind", "benchmark", "metric", "note")}
    )
