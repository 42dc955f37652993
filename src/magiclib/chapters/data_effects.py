"""Data effects: what the web source and the code share do to each benchmark, and whether it holds with scale."""

from __future__ import annotations

import altair as alt

from .. import analysis, plots, report, results
from ..analysis.tables import scale_order
from ..report import ALPHA

REFERENCE, TREATED = "V1", "V2"  # the paper's comparison: FineWeb-Edu (V2) against RefinedWeb (V1)


class DataEffects:
    """Per-benchmark and pooled effects of the web source and the code share, and the reversal check."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        self.cfg = report.study_config(results_dir, preset)
        scores = self.scores = results.table(results_dir, "scores")
        self.scales = scale_order(scores)
        self.categories = [c for c in plots.CATEGORY_ORDER if c in set(scores["category"])]
        self.panels = [f"{scale} {stage}" for scale in self.scales for stage in ("PT", "SFT")]
        self.benchmarks = plots.benchmark_order(scores)
        self.shares = scores.drop_duplicates("proportions").set_index("proportions")["code_share"].sort_values()
        per_benchmark = analysis.web_source_effects(scores, reference=REFERENCE)
        web = analysis.adjust_pvalues(per_benchmark[per_benchmark["term"].str.startswith("web_source[")],
                                      methods=("bh",))
        self.web = web.assign(panel=web["scale"] + " " + web["stage"], coef_pp=100 * web["coef"],
                              low_pp=100 * web["ci_low"], high_pp=100 * web["ci_high"],
                              contrast=web["term"].str.extract(r"\[(.*)\]")[0] + " - " + REFERENCE)
        code_r = analysis.adjust_pvalues(analysis.code_share_effects(scores, n_boot=n_boot), methods=("bh",))
        self.code_r = code_r.assign(panel=code_r["scale"] + " " + code_r["stage"])
        self.pooled = self._pooled(analysis.pooled_effects(scores, reference=REFERENCE, by=["scale", "stage"]))
        self.reversal = analysis.reversal_check(scores, treated=TREATED, reference=REFERENCE, n_boot=n_boot)
        self.paper = analysis.paper_numbers()

    @staticmethod
    def _pooled(pooled):
        """The web-source and code-share terms in accuracy points (code share per ten points), Holm-adjusted."""
        effects = pooled[pooled["term"].str.startswith("web_source[") | (pooled["term"] == "code_share")].copy()
        per_ten = effects["term"] == "code_share"
        effects["effect"] = effects["term"].str.replace(r"web_source\[(.*)\]", rf"\1 - {REFERENCE}", regex=True)
        effects.loc[per_ten, "effect"] = "code share +10 points"
        scale = 100 * per_ten.map({True: 0.1, False: 1.0})  # accuracy points; code share per 10 points
        effects = effects.assign(points=effects["coef"] * scale, low=effects["ci_low"] * scale,
                                 high=effects["ci_high"] * scale)
        return analysis.adjust_pvalues(effects, methods=("holm",))

    def facts(self) -> dict[str, str]:
        paper = self.paper
        quoted = paper[paper["quantity"] == "code_share_r"]
        reported = paper[paper["quantity"] == "web_source_difference_pp"]
        return {
            "sources": "; ".join(f"**{key}** {source.label}" for key, source in self.cfg.web_sources.items()),
            "code_shares": ", ".join(f"{share:.0%} ({name})" for name, share in self.shares.items()),
            "n_mixtures": self.scores["mixture"].nunique(), "reference": REFERENCE, "treated": TREATED,
            "web_significant": self._significant(self.web, "web-source contrasts"),
            "code_significant": self._significant(self.code_r, "code-share correlations"),
            "paper_code_share": "; ".join(
                f"{benchmark} " + " / ".join(f"{r.value:+.2f} ({r.scale})" for r in rows.itertuples())
                for benchmark, rows in quoted.groupby("benchmark", sort=False)),
            "pooled_clear": self._pooled_clear(),
            "paper_reversal": "; ".join(
                f"{category} " + " and ".join(f"{r.value:+.1f} points at {r.scale}" for r in rows.itertuples())
                for category, rows in reported.groupby("category", sort=False)),
            "reversal": self._reversal(),
        }

    @staticmethod
    def _significant(table, label: str, adjusted: str = "p_bh") -> str:
        """How many tests of `table` clear the false discovery rate, naming up to eight."""
        hits = table[table[adjusted] < ALPHA]
        tested = int(table[adjusted].notna().sum())
        if hits.empty:
            return (f"None of the {tested} {label} clears a false discovery rate of {ALPHA:.0%} "
                    "(Benjamini-Hochberg over the whole chart).")
        named = ", ".join(f"{r.benchmark} ({r.panel})" for r in hits.head(8).itertuples())
        more = f" and {len(hits) - 8} more" if len(hits) > 8 else ""
        verb = "clears" if len(hits) == 1 else "clear"
        return (f"{len(hits)} of the {tested} {label} {verb} a false discovery rate of {ALPHA:.0%} "
                f"(Benjamini-Hochberg over the whole chart): {named}{more}.")

    def _pooled_clear(self) -> str:
        effects = self.pooled
        clear = effects[effects["p_holm"] < ALPHA]
        tested = int(effects["p"].notna().sum())
        if clear.empty:
            return f"None of the {tested} pooled effects clears noise after Holm's correction."
        return (f"{len(clear)} of the {tested} pooled effects clear{'s' if len(clear) == 1 else ''} noise after "
                "Holm's correction: " + "; ".join(f"{r.effect} at {r.scale} {r.stage} ({r.points:+.1f} points)"
                                                  for r in clear.itertuples()) + ".")

    def _reversal(self) -> str:
        reversal = self.reversal
        if len(self.scales) < 2:
            return "This study has one scale, so a reversal with scale cannot be checked."
        flips = reversal[reversal["reverses"]].drop_duplicates(["stage", "category"])
        # a confident reversal: one scale's interval above zero, another's below
        bounds = reversal.groupby(["stage", "category"], sort=False).agg(
            above=("ci_low_pp", lambda low: (low > 0).any()), below=("ci_high_pp", lambda high: (high < 0).any()))
        confident = list(bounds.index[bounds["above"] & bounds["below"]])
        if flips.empty:
            return "No category's difference changes sign between the scales, at either stage."
        cases = ", ".join(f"{c} at {s}" for s, c in flips[["stage", "category"]].itertuples(index=False))
        text = f"The sign of the difference changes between scales in {report.counted(len(flips), 'case')}: {cases}. "
        return text + (("Of these, the intervals exclude zero on opposite sides for: "
                        + ", ".join(f"{c} at {s}" for s, c in confident) + ", a reversal beyond noise.")
                       if confident else
                       "In none of them do the intervals at both scales exclude zero, so no reversal is beyond "
                       "noise.")

    # --- charts and tables ------------------------------------------------------------------------------

    def _dots(self, table, y, low, high, title, y_title, column=None):
        """One point per benchmark with its interval, coloured by category, one row of panels per scale+stage."""
        x = alt.X("benchmark:N", sort=self.benchmarks, title=None, axis=alt.Axis(labelAngle=-60))
        points = alt.Chart().mark_circle(size=45, opacity=0.9).encode(
            x=x, y=alt.Y(f"{y}:Q", title=y_title),
            color=alt.Color("category:N", scale=plots.category_scale()),
            tooltip=["benchmark", "category", alt.Tooltip(f"{y}:Q", format=".2f"),
                     alt.Tooltip(f"{low}:Q", format=".2f"), alt.Tooltip(f"{high}:Q", format=".2f"),
                     alt.Tooltip("p:Q", format=".3f"), alt.Tooltip("p_bh:Q", format=".3f")])
        rules = alt.Chart().mark_rule(color="#666").encode(x=x, y=f"{low}:Q", y2=f"{high}:Q")
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(y=alt.datum(0))
        facets = {"row": alt.Row("panel:N", title=None, sort=self.panels)}
        if column:
            facets["column"] = alt.Column(f"{column}:N", title=None)
        width = 255 if column else 520  # one column of panels can take the page's width
        return (alt.layer(zero, rules, points, data=table).properties(width=width, height=110)
                .facet(**facets).properties(title=title))

    def web_chart(self):
        return self._dots(self.web, "coef_pp", "low_pp", "high_pp",
                          f"Web source effect on accuracy, against {REFERENCE} (accuracy points)", "points",
                          column="contrast")

    def code_chart(self):
        return self._dots(self.code_r, "r", "ci_low", "ci_high", "corr(accuracy, code share) across mixtures", "r")

    def pooled_table(self):
        return (self.pooled[["scale", "stage", "effect", "points", "low", "high", "p", "p_holm", "r2"]]
                .rename(columns={"points": "accuracy points", "low": "95% low", "high": "95% high",
                                 "p_holm": "p (Holm)", "r2": "R²"})
                .style.hide(axis="index")
                .format({"accuracy points": "{:+.2f}", "95% low": "{:+.2f}", "95% high": "{:+.2f}", "p": "{:.3f}",
                         "p (Holm)": "{:.3f}", "R²": "{:.2f}"}, na_rep="-"))

    def reversal_chart(self):
        x = alt.X("scale:N", sort=self.scales, title=None, axis=alt.Axis(labelAngle=0))
        lines = alt.Chart().mark_line(point=True).encode(
            x=x, y=alt.Y("difference_pp:Q", title="points"),
            color=alt.Color("category:N", scale=plots.category_scale()),
            tooltip=["category", "scale", alt.Tooltip("difference_pp:Q", format=".2f"),
                     alt.Tooltip("ci_low_pp:Q", format=".2f"), alt.Tooltip("ci_high_pp:Q", format=".2f"),
                     "n_benchmarks"])
        rules = alt.Chart().mark_rule().encode(x=x, y="ci_low_pp:Q", y2="ci_high_pp:Q",
                                               color=alt.Color("category:N", scale=plots.category_scale()))
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(y=alt.datum(0))
        return (alt.layer(zero, rules, lines, data=self.reversal).properties(width=120, height=140)
                .facet(column=alt.Column("category:N", title=None, sort=self.categories),
                       row=alt.Row("stage:N", title=None, sort=["PT", "SFT"]))
                .properties(title=f"{TREATED} - {REFERENCE} accuracy per category, by scale "
                                  "(points, 95% intervals)"))

    def reversal_table(self):
        table = self.reversal.pivot_table(index=["stage", "category"], columns="scale", values="difference_pp",
                                          sort=False)
        return table[[s for s in self.scales if s in table.columns]].style.format("{:+.2f}", na_rep="-").set_caption(
            f"{TREATED} - {REFERENCE}, accuracy points")
