"""RQ4: does confidence track accuracy (r_align), does that persist through SFT, and how calibrated are models?"""

from __future__ import annotations

import altair as alt
import pandas as pd

from .. import analysis, plots, report, results
from ..analysis.reliability import reliability_bins
from ..analysis.tables import scale_order
from ..metrics import item_table
from ..report import ALPHA


class Calibration:
    """Alignment, its persistence, reliability bins, calibration metrics and signal to noise of one study."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        scores = self.scores = results.table(results_dir, "scores")
        self.items = item_table(results.table(results_dir, "items"))
        self.scales = scale_order(scores)
        self.align = analysis.adjust_pvalues(analysis.alignment(scores, n_boot=n_boot), by="axis")
        self.persistence = analysis.adjust_pvalues(analysis.alignment_persistence(scores, n_boot=n_boot), by="axis")
        self.calibration = analysis.calibration_summary(scores)
        self.bins = reliability_bins(self.items, by=["scale", "stage"])
        self.noise = analysis.signal_to_noise(scores, ["accuracy", "confidence"])
        self.paper = analysis.paper_numbers()
        self.categories = [c for c in plots.CATEGORY_ORDER if c in set(scores["category"])]
        self.panels = [(scale, stage) for scale in self.scales for stage in ("PT", "SFT")]

    def facts(self) -> dict[str, str]:
        per_category = self.scores.groupby("category")["benchmark"].nunique()
        align, persistence = self.align, self.persistence
        seeds = int(self.noise["n_seeds"].max())
        below = self._below_one()
        return {
            "n_mixtures": self.scores["mixture"].nunique(), "min_points": per_category.min(),
            "max_points": per_category.max(),
            "align_benchmarks": _cleared(align[align["axis"] == "benchmarks"], "coefficients"),
            "align_mixtures": _cleared(align[align["axis"] == "mixtures"], "coefficients"),
            "persist_benchmarks": _cleared(persistence[persistence["axis"] == "benchmarks"], "coefficients"),
            "persist_mixtures": _cleared(persistence[persistence["axis"] == "mixtures"], "coefficients"),
            "pooled": self._pooled(), "ece_brier": self._ece_brier(),
            "n_seeds": report.counted(seeds, "seed"),
            "seed_noise": ("; the between-seed ratio is shown too." if seeds > 1 else
                           ", so seed noise cannot be separated from the mixture effect; only the item-sampling "
                           "ratio is shown."),
            "below_min": f"{below.min():.0%}", "below_max": f"{below.max():.0%}",
        }

    def _pooled(self) -> str:
        items, bins = self.items, self.bins
        pooled = items.groupby(["scale", "stage"]).agg(
            confidence=("confidence", "mean"), accuracy=("correct", "mean"), items=("correct", "size"))
        pooled = pooled.reindex([p for p in self.panels if p in pooled.index]).reset_index()
        ece = bins.assign(gap=bins["count"] * (bins["accuracy"] - bins["confidence"]).abs()).groupby(
            ["scale", "stage"], sort=False).agg(gap=("gap", "sum"), count=("count", "sum"))
        lines = []
        for row in pooled.itertuples():
            gap = row.confidence - row.accuracy
            side = "overconfident" if gap > 0 else "underconfident" if gap < 0 else "calibrated on average"
            pooled_ece = ece.loc[(row.scale, row.stage), "gap"] / ece.loc[(row.scale, row.stage), "count"]
            lines.append(f"- {row.scale} {row.stage}: mean confidence {row.confidence:.2f} against accuracy "
                         f"{row.accuracy:.2f} over {row.items:,} items, {side}"
                         + (f" by {abs(gap) * 100:.1f} points" if gap else "")
                         + f"; pooled ECE over these bins {pooled_ece:.3f}")
        return "\n".join(lines)

    def _ece_brier(self) -> str:
        by_stage = self.calibration.groupby(["measure", "scale", "stage"], sort=False)["mean"].mean().unstack("stage")
        sentences = []
        for scale in self.scales:
            pt, sft = by_stage.loc[("ece", scale), "PT"], by_stage.loc[("ece", scale), "SFT"]
            brier_pt, brier_sft = by_stage.loc[("brier", scale), "PT"], by_stage.loc[("brier", scale), "SFT"]
            sentences.append(
                f"At {scale}, fine-tuning {_moved(pt, sft)} the ECE averaged over categories from {pt:.3f} to "
                f"{sft:.3f} and {_moved(brier_pt, brier_sft)} the Brier score from {brier_pt:.3f} to "
                f"{brier_sft:.3f}.")
        return " ".join(sentences)

    def _below_one(self) -> pd.Series:
        return (self.noise.assign(low=self.noise["snr_items"] < 1)
                .groupby(["scale", "stage", "metric"], sort=False)["low"].mean())

    # --- charts and tables ------------------------------------------------------------------------------

    def _bars(self, table, column, row, title):
        """r per category (bars, faded unless Holm p < ALPHA) with its interval, in a grid of panels."""
        data = table.assign(clears=table["p_holm"] < ALPHA)
        x = alt.X("category:N", sort=self.categories, title=None, axis=alt.Axis(labelAngle=-30))
        bars = alt.Chart().mark_bar().encode(
            x=x, y=alt.Y("r:Q", scale=alt.Scale(domain=[-1, 1]), title="r"),
            color=alt.Color("category:N", scale=plots.category_scale(), legend=None),
            opacity=alt.condition("datum.clears", alt.value(1.0), alt.value(0.45)),
            tooltip=["category", "axis", alt.Tooltip("r:Q", format=".2f"), alt.Tooltip("ci_low:Q", format=".2f"),
                     alt.Tooltip("ci_high:Q", format=".2f"), alt.Tooltip("p:Q", format=".4f"),
                     alt.Tooltip("p_holm:Q", format=".4f"), "n"])
        rules = alt.Chart().mark_rule(color="#333").encode(x=x, y="ci_low:Q", y2="ci_high:Q")
        return (alt.layer(bars, rules, data=data).properties(width=115, height=140)
                .facet(column=alt.Column(f"{column}:N", title=None, sort=sorted(set(data[column]), key=str)),
                       row=alt.Row(f"{row}:N", title=None))
                .properties(title=title))

    def align_chart(self):
        panels = self.align.assign(panel=self.align["scale"] + " " + self.align["stage"])
        return self._bars(panels, "panel", "axis", "r_align per category (rows: reading)")

    def align_table(self):
        table = self.align.assign(value=self.align.apply(_cell_text, axis=1)).pivot_table(
            index=["axis", "category"], columns=["scale", "stage"], values="value", aggfunc="first", sort=False)
        table = table.reindex(columns=pd.MultiIndex.from_product([self.scales, ["PT", "SFT"]]))
        return table.style.set_caption("Ours: r_align with 95% interval; * Holm-adjusted p < 0.05")

    def paper_align_table(self):
        paper = self.paper
        reported = paper[paper["quantity"] == "r_align"].pivot_table(
            index="category", columns=["scale", "stage"], values="value", sort=False)
        paper_scales = list(paper.sort_values("scale_rank")["scale"].unique())
        reported = reported.reindex(columns=pd.MultiIndex.from_product([paper_scales, ["PT", "SFT"]]))
        return reported.reindex(self.categories).style.format("{:.2f}").set_caption("The paper's r_align [S]")

    def persistence_chart(self):
        return self._bars(self.persistence, "scale", "axis", "corr(gap at PT, gap at SFT) per category")

    def persistence_table(self):
        persistence = self.persistence
        table = persistence.assign(value=persistence.apply(_cell_text, axis=1)).pivot_table(
            index=["axis", "category"], columns="scale", values="value", aggfunc="first", sort=False)
        return table[[s for s in self.scales if s in table.columns]].style.set_caption(
            "Ours: persistence r with 95% interval; * Holm-adjusted p < 0.05")

    def reliability_chart(self):
        bins = self.bins
        return alt.hconcat(*[plots.reliability(bins[bins["scale"] == scale], color="stage", title=f"scale {scale}")
                             .properties(width=250, height=250) for scale in self.scales])

    def calibration_chart(self):
        measures = self.calibration[self.calibration["measure"].isin(["ece", "brier", "overconfidence"])].assign(
            low=lambda t: t["mean"] - t["se"], high=lambda t: t["mean"] + t["se"])
        x = alt.X("category:N", sort=self.categories, title=None, axis=alt.Axis(labelAngle=-30))
        offset = alt.XOffset("stage:N", sort=["PT", "SFT"])
        bars = alt.Chart().mark_bar().encode(
            x=x, xOffset=offset, y=alt.Y("mean:Q", title=None),
            color=alt.Color("stage:N", sort=["PT", "SFT"], scale=alt.Scale(range=["#9D755D", "#72B7B2"])),
            tooltip=["category", "stage", "measure", alt.Tooltip("mean:Q", format=".3f"),
                     alt.Tooltip("se:Q", format=".3f"), "n_benchmarks"])
        rules = alt.Chart().mark_rule(color="#333").encode(x=x, xOffset=offset, y="low:Q", y2="high:Q")
        return (alt.layer(bars, rules, data=measures).properties(width=230, height=130)
                .facet(row=alt.Row("measure:N", title=None, sort=["ece", "brier", "overconfidence"]),
                       column=alt.Column("scale:N", title=None, sort=self.scales))
                .properties(title="Calibration per category (mean +- 1 SE)"))

    def calibration_table(self):
        wide = self.calibration.pivot_table(index=["measure", "category"], columns=["scale", "stage"],
                                            values="mean", sort=False)
        wide = wide.reindex(columns=pd.MultiIndex.from_product([self.scales, ["PT", "SFT"]]))
        return wide.style.format("{:.3f}", na_rep="-").set_caption("Mean over the category's benchmarks")

    def noise_table(self):
        noise = self.noise
        columns = ["snr_items"] + (["snr_seed"] if noise["n_seeds"].max() > 1 else [])
        ratios = noise.groupby(["scale", "stage", "metric"], sort=False)[columns].median()
        return (ratios.assign(share_below_1=self._below_one())
                .style.format({**{c: "{:.2f}" for c in columns}, "share_below_1": "{:.0%}"}, na_rep="-")
                .set_caption("Median over benchmarks of between-mixture SD / noise; share of benchmarks below 1"))


def _moved(before: float, after: float) -> str:
    return "raised" if after > before else "lowered" if after < before else "left"


def _cleared(table: pd.DataFrame, what: str) -> str:
    """Which rows of `table` clear noise after Holm's correction (within their axis)."""
    hits = table[table["p_holm"] < ALPHA]
    if hits.empty:
        return f"none of the {len(table)} {what} clears noise after Holm's correction"
    verb = "clears" if len(hits) == 1 else "clear"
    listed = "; ".join(
        f"{r.category} at {r.scale}" + (f" {r.stage}" if "stage" in table else "") + f" (r = {r.r:.2f})"
        for r in hits.head(8).itertuples()) + (f"; and {len(hits) - 8} more" if len(hits) > 8 else "")
    return f"{len(hits)} of the {len(table)} {what} {verb} noise after Holm's correction: {listed}"


def _cell_text(row: pd.Series) -> str:
    """r with its interval, starred when it survives Holm's correction."""
    if pd.isna(row["r"]):
        return "-"
    star = "*" if row["p_holm"] < ALPHA else ""
    return f"{row['r']:.2f}{star} {report.interval_text(row['ci_low'], row['ci_high'])}"
