"""RQ2: which benchmarks predict their own post-SFT results, as correlations and as decisions between mixtures."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .. import analysis, plots, report
from ..analysis.tables import benchmark_order
from ..report import METRIC_NAMES, interval, p_text

VERDICT_COLORS = alt.Scale(domain=["robust", "uncertain", "reversed"], range=["#54A24B", "#BAB0AC", "#E45756"])
# The paper's named reliable predictors ([S]); its per-benchmark numbers are in paper_numbers().
NAMED_RELIABLE = ("hellaswag", "piqa", "copa", "arc_easy", "sciq", "arc_challenge")


def verdict(r: pd.Series, p: pd.Series) -> np.ndarray:
    """predictor_ranking's verdict, for any p column; "no r" where scores were constant at a stage."""
    return np.where(r.isna(), "no r", np.where(p < 0.05, np.where(r > 0, "robust", "reversed"), "uncertain"))


class Predictors(report.ScoresChapter):
    """The benchmarks ranked as predictors, their decision accuracy and sign flips between scales."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        super().__init__(results_dir)
        scores = self.scores
        ranking = pd.concat([analysis.predictor_ranking(scores, metric=m, n_boot=n_boot)
                             for m in ("accuracy", "confidence")], ignore_index=True)
        # one family per metric: every benchmark at every scale
        ranking = analysis.adjust_pvalues(ranking, by="metric")
        ranking["verdict_holm"] = verdict(ranking["r"], ranking["p_holm"])
        self.ranking = ranking
        kendall = analysis.transfer_table(scores, metrics="accuracy", methods="kendall", n_boot=n_boot)
        self.accuracy = self._in_benchmark_order(ranking[ranking["metric"] == "accuracy"].merge(
            kendall[["scale", "benchmark", "r", "p"]].rename(columns={"r": "tau", "p": "p_tau"}),
            on=["scale", "benchmark"]))
        self.flips = analysis.sign_flips(ranking) if len(self.scales) > 1 else pd.DataFrame()

    def _in_benchmark_order(self, frame: pd.DataFrame) -> pd.DataFrame:
        order = benchmark_order(self.scores)
        return frame.sort_values("benchmark", key=lambda b: b.map(order.index), kind="stable")

    def _wide(self, frames: dict) -> pd.DataFrame:
        wide = pd.concat(frames, axis=1)
        order = benchmark_order(self.scores)
        return wide.reindex(sorted(wide.index, key=lambda key: order.index(key[1])))

    def facts(self) -> dict[str, str]:
        pairs = self.n_mixtures * (self.n_mixtures - 1) // 2
        return {"n_mixtures": self.n_mixtures, "n_tests": self.ranking.groupby("metric").size().max(),
                "verdicts": self._verdicts(), "n_pairs": pairs, "decisions": self._decisions(pairs),
                "flips": self._flips()}

    def _verdicts(self) -> str:
        accuracy, lines = self.accuracy, []
        for scale in self.scales:
            at = accuracy[accuracy["scale"] == scale].dropna(subset=["r"])
            robust = at[at["verdict_holm"] == "robust"]["benchmark"].tolist()
            # predictor_ranking's own verdict is on Holm's p; these two lists are on the raw p
            raw = at[verdict(at["r"], at["p"]) == "robust"]["benchmark"].tolist()
            reversed_ = at[verdict(at["r"], at["p"]) == "reversed"]["benchmark"].tolist()
            bh = at[(at["p_bh"] < 0.05) & (at["r"] > 0)]["benchmark"].tolist()
            text = f"- **{scale}**: "
            text += (f"robust after Holm: {', '.join(robust)}" if robust else
                     "no benchmark clears noise after Holm adjustment")
            text += (f"; robust on raw p: {len(raw)} of {len(at)}" + (f" ({', '.join(raw)})" if raw else ""))
            text += f"; at a 5% false discovery rate (Benjamini-Hochberg): {len(bh)}"
            text += (f"; reversed on raw p: {', '.join(reversed_)}." if reversed_ else "; none reversed on raw p.")
            if len(at) < (accuracy["scale"] == scale).sum():
                text += (f" {(accuracy['scale'] == scale).sum() - len(at)} benchmarks have no correlation (the "
                         "same accuracy for every mixture at one stage).")
            lines.append(text)
        return "\n".join(lines)

    def _decisions(self, pairs: int) -> str:
        lines = []
        for scale in self.scales:
            at = self.accuracy[self.accuracy["scale"] == scale]
            best = at.loc[at["decision_accuracy"].idxmax()]
            lines.append(f"- {scale}: mean decision accuracy {at['decision_accuracy'].mean():.2f} over "
                         f"{len(at)} benchmarks; the best is {best['benchmark']} ({best['decision_accuracy']:.2f}, "
                         f"{best['decision_accuracy'] * pairs:g} of {pairs} pairs); "
                         f"Kendall's test finds the pairs ordered better than chance (p < .05) on "
                         f"{report.counted((at['p_tau'] < 0.05).sum(), 'benchmark')}.")
        return "\n".join(lines)

    def _flips(self) -> str:
        if self.flips.empty:
            return ("This study has one scale, so there is nothing to flip between; run a preset with two "
                    "scales (e.g. `mini`) to see this section.")
        lines = []
        for metric in ("accuracy", "confidence"):
            at = self.flips[self.flips["metric"] == metric].dropna(subset=["r_from", "r_to"])
            for (small, large), step in at.groupby(["scale_from", "scale_to"], sort=False):
                flipped = step[step["flips"]]
                confident = flipped[flipped["confident_flip"]]
                lines.append(
                    f"- {METRIC_NAMES[metric]}, {small} to {large}: {len(flipped)} of {len(step)} benchmarks change "
                    f"the sign of their transfer" + (f" ({', '.join(flipped['benchmark'])})" if len(flipped) else "")
                    + f"; confident flips (both intervals exclude zero, on opposite sides): {len(confident)}.")
        return ("A benchmark whose transfer changes sign with scale would send a small-scale mixture search the "
                "wrong way at the larger scale. The paper reports such flips for WinoGrande and MNLI [S]. Here, "
                "counting only benchmarks with a correlation at both scales:\n\n" + "\n".join(lines)
                + "\n\nA sign flip between two small correlations is expected by chance; only a confident flip, with "
                "both Fisher-z intervals away from zero on opposite sides, is evidence.")

    # --- charts and tables ------------------------------------------------------------------------------

    def ranking_chart(self):
        def panel(scale):
            at = self.accuracy[self.accuracy["scale"] == scale].dropna(subset=["r"])
            base = alt.Chart(at).encode(
                y=alt.Y("benchmark:N", sort=alt.EncodingSortField("r", order="descending"), title=None))
            rules = base.mark_rule(color="#888").encode(x=alt.X("ci_low:Q", title="cross-stage r",
                                                                scale=alt.Scale(domain=[-1, 1])), x2="ci_high:Q")
            points = base.mark_point(size=70, filled=True).encode(
                x="r:Q", color=alt.Color("verdict_holm:N", scale=VERDICT_COLORS, title="verdict (Holm)"),
                shape=alt.Shape("category:N", sort=list(plots.CATEGORY_ORDER)),
                tooltip=["benchmark", "category", alt.Tooltip("r:Q", format=".2f"),
                         alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
                         alt.Tooltip("p:Q", format=".4f"), alt.Tooltip("p_holm:Q", format=".4f"), "verdict",
                         "verdict_holm"])
            zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(x=alt.datum(0))
            return alt.layer(zero, rules, points).properties(width=320, height=16 * max(len(at), 1), title=scale)

        return alt.vconcat(*[panel(scale) for scale in self.scales]).properties(
            title="Benchmarks ranked by cross-stage accuracy r, with 95% Fisher-z intervals")

    def ranking_table(self, metric: str):
        frames = {}
        for scale in self.scales:
            at = self.ranking[(self.ranking["metric"] == metric) & (self.ranking["scale"] == scale)].set_index(
                ["category", "benchmark"])
            frames[scale] = pd.DataFrame({"rank": at["rank"], "r": at["r"], "95% CI": interval(at), "p": at["p"],
                                          "p (Holm)": at["p_holm"], "verdict (Holm)": at["verdict_holm"]})
        wide = self._wide(frames)
        return (wide.style.set_caption(f"Cross-stage {METRIC_NAMES[metric]} transfer as a predictor, per scale")
                .format("{:.2f}", subset=[c for c in wide.columns if c[1] == "r"], na_rep="-")
                .format(p_text, subset=[c for c in wide.columns if c[1] in ("p", "p (Holm)")])
                .format(na_rep="-", subset=[c for c in wide.columns if c[1] == "rank"]))

    def paper_table(self):
        accuracy, scored = self.accuracy, set(self.accuracy["benchmark"])
        named = [b for b in NAMED_RELIABLE if b in scored]
        quoted = self.paper[self.paper["quantity"] == "transfer_r"]
        rows = []
        for benchmark in named + [b for b in pd.unique(quoted["benchmark"]) if b in scored]:
            values = quoted[quoted["benchmark"] == benchmark]
            row = {"benchmark": benchmark, "the paper [S]": "named reliable" if benchmark in named else ", ".join(
                f"{v:.2f} ({s})" for v, s in zip(values["value"], values["scale"], strict=True))}
            for scale in self.scales:
                at = accuracy[(accuracy["scale"] == scale) & (accuracy["benchmark"] == benchmark)].iloc[0]
                row[f"{scale}: r"] = at["r"]
                row[f"{scale}: verdict (Holm)"] = at["verdict_holm"]
            rows.append(row)
        return (pd.DataFrame(rows).style.hide(axis="index")
                .set_caption("The paper's highlighted benchmarks in this study")
                .format({f"{s}: r": "{:.2f}" for s in self.scales}, na_rep="-"))

    def decision_chart(self):
        charts = []
        for scale in self.scales:
            at = self.accuracy[self.accuracy["scale"] == scale]
            bars = plots.bar_ci(at, "decision_accuracy").encode(
                y=alt.Y("decision_accuracy:Q", title="decision accuracy", scale=alt.Scale(domain=[0, 1])))
            coin = alt.Chart().mark_rule(color="#333", strokeDash=[4, 4]).encode(y=alt.datum(0.5))
            charts.append(alt.layer(bars, coin).properties(width=400, height=160, title=scale))
        return alt.vconcat(*charts).properties(title="Decision accuracy per benchmark (dashed: a coin flip)")

    def decision_table(self):
        frames = {}
        for scale in self.scales:
            at = self.accuracy[self.accuracy["scale"] == scale].set_index(["category", "benchmark"])
            frames[scale] = pd.DataFrame({"decision accuracy": at["decision_accuracy"], "Kendall tau": at["tau"],
                                          "p (Kendall)": at["p_tau"]})
        wide = self._wide(frames)
        return (wide.style.set_caption("Decision accuracy and Kendall's tau-b, accuracy at PT against accuracy at SFT")
                .format("{:.2f}", subset=[c for c in wide.columns if c[1] != "p (Kendall)"], na_rep="-")
                .format(p_text, subset=[c for c in wide.columns if c[1] == "p (Kendall)"]))

    def flips_chart(self):
        """Each benchmark's cross-stage r from scale to scale; None with one scale."""
        if self.flips.empty:
            return None
        shown = self.flips.dropna(subset=["r_from", "r_to"]).assign(metric=lambda t: t["metric"].map(METRIC_NAMES))
        long = pd.concat([shown.assign(scale=shown["scale_from"], r=shown["r_from"]),
                          shown.assign(scale=shown["scale_to"], r=shown["r_to"])])
        long["flip"] = np.where(long["confident_flip"], "confident flip",
                                np.where(long["flips"], "flip", "same sign"))
        base = alt.Chart().encode(
            x=alt.X("scale:N", sort=self.scales, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("r:Q", title="cross-stage r", scale=alt.Scale(domain=[-1, 1])),
            detail="benchmark:N")
        lines = base.mark_line().encode(
            color=alt.Color("flip:N", scale=alt.Scale(domain=["same sign", "flip", "confident flip"],
                                                      range=["#BAB0AC", "#F58518", "#E45756"]), title=None),
            tooltip=["benchmark", "category", "scale", alt.Tooltip("r:Q", format=".2f"), "flip"])
        points = base.mark_circle(size=40).encode(
            color=alt.Color("category:N", scale=plots.category_scale()),
            tooltip=["benchmark", "category", "scale", alt.Tooltip("r:Q", format=".2f")])
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(y=alt.datum(0))
        panel = alt.layer(zero, lines, points, data=long).resolve_scale(color="independent").properties(
            width=200, height=280)
        return (panel.facet(column=alt.Column("metric:N", title=None, sort=list(METRIC_NAMES.values())))
                .properties(title="Cross-stage transfer from scale to scale, per benchmark"))

    def flips_table(self):
        """Every benchmark whose transfer changes sign between scales; None with one scale."""
        if self.flips.empty:
            return None
        table = self.flips[self.flips["flips"]].copy()
        table["paper"] = [self.quote.span("transfer_r", a, z, " -> ", metric=m, benchmark=b)
                          for m, b, a, z in zip(table["metric"], table["benchmark"], table["scale_from"],
                                                table["scale_to"], strict=True)]
        table["confident_flip"] = table["confident_flip"].map({True: "yes", False: "no"})
        columns = ["metric", "category", "benchmark", "scale_from", "scale_to", "r_from", "r_to", "confident_flip"]
        return (table[columns + (["paper"] if table["paper"].any() else [])]
                .rename(columns={"scale_from": "from", "scale_to": "to", "r_from": "r before", "r_to": "r after",
                                 "confident_flip": "confident"})
                .style.hide(axis="index").set_caption("Every benchmark whose transfer changes sign between scales")
                .format({"r before": "{:.2f}", "r after": "{:.2f}"}))
