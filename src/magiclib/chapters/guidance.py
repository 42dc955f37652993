"""Guidance, tested: the paper's three recommendations, each as a claim with a test and a verdict."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .. import analysis, plots, report, results
from ..analysis import recommendations as rec
from ..analysis.tables import scale_order
from ..report import p_is

VERDICT_COLOURS = {"supported": "#d9f0d3", "not supported": "#f4cccc", "inconclusive": "#eeeeee"}


class Guidance:
    """The tests behind each recommendation (analysis.recommendations) and their summary."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        scores = self.scores = results.table(results_dir, "scores")
        self.scales = scale_order(scores)
        self.categories = [c for c in plots.CATEGORY_ORDER if c in set(scores["category"])]
        self.stability = rec.transfer_stability(scores, n_boot=n_boot)
        self.advantage = rec.aggregate_advantage(scores, n_boot=n_boot)
        self.increment = rec.confidence_increment(scores)
        self.agreement = rec.scale_agreement(scores, n_boot=n_boot)
        self.summary = rec.recommendation_summary(self.stability, self.advantage, self.increment, self.agreement)
        self.ranking = analysis.adjust_pvalues(analysis.predictor_ranking(scores, n_boot=n_boot),
                                               methods=("holm",), by="scale")
        self.transfer = (analysis.transfer_table(scores, "accuracy", "pearson", n_boot=n_boot)
                         if len(self.scales) > 1 else None)

    def _verdict(self, recommendation: str) -> str:
        row = self.summary.set_index("recommendation").loc[recommendation]
        return f"**Verdict: {row['verdict']}** ({p_is(row['p'])})."

    def facts(self) -> dict[str, str]:
        counts = self.summary["verdict"].value_counts()
        n = self.scores["mixture"].nunique()
        signs = rec.sign_test(self.advantage["advantage"])
        robust = self.ranking[(self.ranking["p_holm"] < rec.ALPHA) & (self.ranking["r"] > 0)]
        confidence = self.increment[self.increment["term"] == "pt_confidence"]
        return {
            "n_claims": len(self.summary),
            "verdict_counts": ", ".join(f"{counts.get(v, 0)} {'is' if counts.get(v, 0) == 1 else 'are'} {v}"
                                        for v in rec.VERDICTS),
            "alpha": rec.ALPHA, "stability": self._stability(),
            "robust": "\n".join(f"- {scale}: " + (", ".join(f"{r.benchmark} (r = {r.r:.2f})" for r in
                                                            robust[robust["scale"] == scale].itertuples()) or "none")
                                for scale in self.scales),
            "aggregate": (f"The category mean transfers better in {signs['positive']} of {signs['n']} cells with a "
                          f"defined comparison (sign test {p_is(signs['p'])}). "
                          + self._verdict("choose benchmarks by category aggregate")),
            "confidence": " ".join(f"At {r.scale}, the confidence slope is {r.coef:+.2f} ({p_is(r.p)}; "
                                   f"{r.n_benchmarks} benchmarks, {r.n} points)." for r in confidence.itertuples())
                          + " " + self._verdict("treat confidence as a complementary signal"),
            "validation": self._validation(), "n_mixtures": n,
            "critical_r": f"{report.critical_r(n, rec.ALPHA):.2f}",
        }

    def _stability(self) -> str:
        verdict = self._verdict("choose benchmarks by measured transfer")
        if self.transfer is None:
            return "This study has one scale, so whether transfer is stable across scales cannot be tested. " + verdict
        row = self.stability.iloc[-1]
        return (f"Across the {int(row['n_benchmarks'])} benchmarks with a defined correlation at both scales, the "
                f"rank correlation between {row['scale_from']} and {row['scale_to']} is {row['r']:.2f} "
                f"(95% interval {row['ci_low']:.2f} to {row['ci_high']:.2f}; {p_is(row['p'])}). " + verdict)

    def _validation(self) -> str:
        verdict = self._verdict("validate mixture decisions at two or more scales")
        if self.agreement.empty:
            return "This study has one scale, so decisions cannot be compared across scales. " + verdict
        same = int(self.agreement["same_best"].sum())
        return (f"The best mixture by category mean is the same at both scales in {same} of {len(self.agreement)} "
                "categories. " + verdict)

    # --- charts and tables ------------------------------------------------------------------------------

    def summary_table(self):
        # the claims and tests are spelled out in each section of the chapter; the table keeps to the outcome
        return (self.summary[["recommendation", "verdict", "estimate_is", "estimate", "p", "n_tests"]]
                .rename(columns={"n_tests": "tests", "estimate_is": "estimate is"})
                .style.hide(axis="index").format({"estimate": "{:.2f}", "p": "{:.3f}"}, na_rep="-")
                .map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'transparent')}", subset=["verdict"]))

    def stability_chart(self):
        """Each benchmark's accuracy transfer at the smallest and largest scale; None with one scale."""
        if self.transfer is None:
            return None
        wide = self.transfer.pivot_table(index=["category", "benchmark"], columns="scale", values="r",
                                         sort=False).reset_index()
        small, large = self.scales[0], self.scales[-1]
        chart = alt.Chart(wide).mark_circle(size=70, opacity=0.85).encode(
            x=alt.X(f"{small}:Q", scale=alt.Scale(domain=[-1, 1]), title=f"cross-stage r at {small}"),
            y=alt.Y(f"{large}:Q", scale=alt.Scale(domain=[-1, 1]), title=f"cross-stage r at {large}"),
            color=alt.Color("category:N", scale=plots.category_scale()),
            tooltip=["benchmark", "category", alt.Tooltip(f"{small}:Q", format=".2f"),
                     alt.Tooltip(f"{large}:Q", format=".2f")])
        diagonal = alt.Chart(pd.DataFrame({"v": [-1, 1]})).mark_line(color="#999", strokeDash=[4, 4]).encode(
            x="v:Q", y="v:Q")
        return alt.layer(diagonal, chart).properties(width=360, height=360,
                                                     title="Each benchmark's accuracy transfer at two scales")

    def aggregate_chart(self):
        long = self.advantage.melt(id_vars=["scale", "category"], value_vars=["aggregate_r", "members_r"],
                                   var_name="score", value_name="r")
        long["score"] = long["score"].map({"aggregate_r": "category mean", "members_r": "its benchmarks (mean r)"})
        y = alt.Y("category:N", sort=self.categories, title=None)
        link = alt.Chart().mark_rule(color="#bbb").encode(y=y, x="min(r):Q", x2="max(r):Q")
        dots = alt.Chart().mark_point(filled=True, size=80).encode(
            y=y, x=alt.X("r:Q", scale=alt.Scale(domain=[-1, 1]), title="cross-stage r (accuracy)"),
            shape=alt.Shape("score:N", title=None, legend=alt.Legend(orient="bottom")),
            color=alt.Color("category:N", scale=plots.category_scale(), legend=None),
            tooltip=["scale", "category", "score", alt.Tooltip("r:Q", format=".2f")])
        return (alt.layer(link, dots, data=long).properties(width=250, height=25 * len(self.categories))
                .facet(column=alt.Column("scale:N", title=None, sort=self.scales))
                .properties(title="Category mean against its benchmarks"))

    def confidence_chart(self):
        terms = self.increment.assign(
            term=self.increment["term"].map({"pt_score": "PT accuracy", "pt_confidence": "PT confidence"}))
        y = alt.Y("term:N", title=None, sort=["PT accuracy", "PT confidence"])
        dots = alt.Chart().mark_point(filled=True, size=80).encode(
            y=y, x=alt.X("coef:Q", title="slope on z-scores (SFT accuracy)"),
            color=alt.Color("term:N", legend=None, scale=alt.Scale(range=["#9D755D", "#4C78A8"])),
            tooltip=["scale", "term", alt.Tooltip("coef:Q", format=".2f"), alt.Tooltip("ci_low:Q", format=".2f"),
                     alt.Tooltip("ci_high:Q", format=".2f"), alt.Tooltip("p:Q", format=".3f"), "n"])
        bars = alt.Chart().mark_rule().encode(y=y, x="ci_low:Q", x2="ci_high:Q")
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(x=alt.datum(0))
        return (alt.layer(zero, bars, dots, data=terms).properties(width=320, height=70)
                .facet(row=alt.Row("scale:N", title=None, sort=self.scales))
                .properties(title="What predicts SFT accuracy across mixtures (95% intervals)"))

    def agreement_table(self):
        """Category decisions between consecutive scales, Holm-adjusted; None with one scale."""
        if self.agreement.empty:
            return None
        shown = analysis.adjust_pvalues(self.agreement, methods=("holm",))
        return (shown[["category", "scale_from", "scale_to", "r", "ci_low", "ci_high", "p", "p_holm", "best_from",
                       "best_to"]]
                .rename(columns={"ci_low": "95% low", "ci_high": "95% high", "p_holm": "p (Holm)",
                                 "best_from": "best at first scale", "best_to": "best at second scale"})
                .style.hide(axis="index").format({"r": "{:.2f}", "95% low": "{:.2f}", "95% high": "{:.2f}",
                                                  "p": "{:.3f}", "p (Holm)": "{:.3f}"}, na_rep="-"))
