"""RQ3: how transfer changes with scale: per benchmark and category, coherence within categories, and the
whole cross-benchmark structure before and after fine-tuning."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .. import analysis, plots, report, results
from ..analysis.tables import scale_order
from ..report import METRIC_NAMES, interval, p_is, p_text

KINDS = {"PT-PT": "PT with PT", "SFT-SFT": "SFT with SFT", "PT-SFT": "PT with SFT"}
DIRECTIONS = ("competition to synergy", "synergy to competition")


class Scale:
    """Differences between scales (paired bootstrap), coherence and the confidence matrices of one study."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        scores = self.scores = results.table(results_dir, "scores")
        self.runs = results.table(results_dir, "runs")
        self.scales = scale_order(scores)
        self.several = len(self.scales) > 1
        self.paper = analysis.paper_numbers()
        self.quote = report.PaperValues(self.paper, self.scales)
        if self.several:
            differences = analysis.scale_differences(scores, n_boot=n_boot)
            category_differences = analysis.category_scale_differences(scores, n_boot=n_boot)
            # decisions use Steiger's Z (column p), which holds its level at n = 9; p_boot rejects too often
            # one family per metric: every benchmark's difference between consecutive scales
            self.differences = analysis.adjust_pvalues(differences, p_column="p", by="metric")
            self.category_differences = category_differences
        self.coherence = analysis.coherence_means(scores, n_boot=n_boot)
        self.similarity = analysis.matrix_similarity(scores, "confidence")
        self.matrices = analysis.cross_benchmark_matrix(scores, "confidence")

    def facts(self) -> dict[str, str]:
        return {"scales": self._scales(), "overall": self._overall(), "per_benchmark": self._per_benchmark(),
                "coherence": self._coherence(), "similarity": self._similarity()}

    def _scales(self) -> str:
        scales, human = self.scales, report.human
        parameters = self.scores.groupby("scale")["n_params"].first().reindex(scales)
        runs = self.runs
        tokens = runs[runs["kind"] == "pretrain"].groupby("scale")["summary_tokens_seen"].median().reindex(scales)
        text = "This study has " + ", ".join(f"{scale} ({human(parameters[scale])} parameters, "
                                             f"{human(tokens[scale])} pretraining tokens)" for scale in scales)
        if self.several:
            text += f", {parameters.iloc[-1] / parameters.iloc[0]:.1f}x apart in parameters"
        paper_scales = list(pd.unique(self.paper["scale"]))
        text += (f". The paper compared {' and '.join(paper_scales)}; where the book quotes it, our scales are "
                 "matched to the paper's by rank (smaller with smaller).")
        if self.several:
            text += (" Each correlation is computed on the same mixtures at every scale, so a difference between "
                     "two of them is a difference between dependent correlations: its interval comes from a "
                     "paired bootstrap that resamples the same mixtures at both scales.")
        return text

    def _overall(self) -> str:
        if not self.several:
            return ("This study has one scale, so this section is empty; a preset with two scales (e.g. `mini`) "
                    "fills it.")
        lines, table = [], self.category_differences
        for row in table[table["category"] == "all"].itertuples():
            moves = "rises" if row.difference > 0 else "falls"
            clear = ("an interval that excludes zero" if row.ci_low > 0 or row.ci_high < 0 else
                     "an interval that includes zero, so the change is not distinguishable from noise")
            quoted = [self.quote.value("transfer_mean_r", s, metric=row.metric, category="all")
                      for s in (row.scale_from, row.scale_to)]
            lines.append(f"- {METRIC_NAMES[row.metric]}: the mean over all benchmarks {moves} from {row.r_from:.2f} "
                         f"({row.scale_from}) to {row.r_to:.2f} ({row.scale_to}), a change of {row.difference:+.2f} "
                         f"[{row.ci_low:.2f}, {row.ci_high:.2f}], {clear}"
                         + (f"; the paper: {' to '.join(quoted)}." if all(quoted) else "."))
        return ("The paper's headline is that accuracy and confidence transfer move in opposite directions with "
                "scale [P]. Mean cross-stage r here:\n\n" + "\n".join(lines))

    def _per_benchmark(self) -> str:
        if not self.several:
            return ""
        lines = []
        for metric, rows in self.differences.groupby("metric", sort=False):
            defined = rows.dropna(subset=["difference"])
            # an interval flagged unreliable (|r| = 1 at a scale, heavily tied scores) is not counted
            with_interval = defined.dropna(subset=["ci_low"])
            with_interval = with_interval[with_interval["ci_reliable"].fillna(False).astype(bool)]
            excludes = with_interval[(with_interval["ci_low"] > 0) | (with_interval["ci_high"] < 0)]
            text = (f"- {METRIC_NAMES[metric]}: of {len(with_interval)} benchmarks with an interval, "
                    f"{len(excludes)} exclude zero ({(excludes['difference'] > 0).sum()} up, "
                    f"{(excludes['difference'] < 0).sum()} down) and {(defined['p_holm'] < 0.05).sum()} "
                    "differences pass Steiger's test after Holm's adjustment")
            if len(defined) > len(with_interval):
                text += (f"; {len(defined) - len(with_interval)} more have a difference but no reliable interval "
                         "(scores constant in most resamples, or |r| = 1 at a scale)")
            lines.append(text + ".")
        return "\n".join(lines)

    def _coherence(self) -> str:
        if not self.several:
            return ""
        small, large = self.scales[0], self.scales[-1]
        wide = self.coherence.pivot_table(index=["metric", "category", "kind"], columns="scale",
                                          values=["mean_r", "ci_low", "ci_high"], sort=False)
        turned, confident = dict.fromkeys(DIRECTIONS, 0), dict.fromkeys(DIRECTIONS, 0)
        for _, row in wide.iterrows():
            before, after = row[("mean_r", small)], row[("mean_r", large)]
            if before < 0 < after or after < 0 < before:
                direction = DIRECTIONS[0] if before < 0 else DIRECTIONS[1]
                turned[direction] += 1
                confident[direction] += all(row[("ci_high", s)] < 0 or row[("ci_low", s)] > 0 for s in (small, large))
        up, down = DIRECTIONS
        return (f"The paper reports that competition within a category turns into synergy with scale [S]. Of the "
                f"{len(wide)} (metric, category, kind) coherence means, {turned[up]} turn from competition at "
                f"{small} to synergy at {large} ({confident[up]} with both intervals excluding zero) and "
                f"{turned[down]} turn the other way ({confident[down]} with both intervals excluding zero).")

    def _similarity(self) -> str:
        lines = [f"- {row.scale}: r = {row.r:.2f} over {row.n_entries} pairs of benchmarks; Mantel "
                 f"{p_is(row.p_mantel)}, naive p = {row.p_naive:.1e}." for row in self.similarity.itertuples()]
        quoted = self.paper[self.paper["quantity"] == "matrix_similarity_r"]
        return "\n".join(lines) + "".join(f"\n\nThe paper reports r = {q.value:.2f} at {q.scale} [{q.mark}]: {q.note}."
                                          for q in quoted.itertuples())

    # --- charts and tables ------------------------------------------------------------------------------

    def category_chart(self):
        """Mean cross-stage r per category at each scale; None with one scale."""
        if not self.several:
            return None
        table = self.category_differences
        view = table.assign(metric=table["metric"].map(METRIC_NAMES))
        order = list(plots.CATEGORY_ORDER) + ["all"]
        long = pd.concat([view.assign(scale=view["scale_from"], r=view["r_from"]),
                          view.assign(scale=view["scale_to"], r=view["r_to"])])
        base = alt.Chart().encode(
            x=alt.X("scale:N", sort=self.scales, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("r:Q", title="mean cross-stage r", scale=alt.Scale(domain=[-1, 1])),
            color=alt.Color("category:N", sort=order, title="category",
                            scale=alt.Scale(domain=order, range=list(plots.CATEGORY_COLORS) + ["#555555"])),
            tooltip=["category", "scale", alt.Tooltip("r:Q", format=".2f"),
                     alt.Tooltip("difference:Q", format="+.2f"),
                     alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f")])
        slopes = alt.layer(base.mark_line(), base.mark_circle(size=50), data=long).properties(width=170, height=260)
        return (slopes.facet(column=alt.Column("metric:N", title=None, sort=["accuracy", "confidence"]))
                .properties(title="Mean cross-stage r per category at each scale"))

    def category_tables(self) -> list:
        """The change of the mean r per category, one table per pair of consecutive scales."""
        if not self.several:
            return []
        differences = self.category_differences
        table = differences.assign(
            metric=differences["metric"].map(METRIC_NAMES), interval=interval(differences),
            paper=[self.quote.span("transfer_mean_r", a, z, " to ", metric=m, category=c)
                   for m, c, a, z in zip(differences["metric"], differences["category"], differences["scale_from"],
                                         differences["scale_to"], strict=True)])
        tables = []
        for (small, large), at in table.groupby(["scale_from", "scale_to"], sort=False):
            tables.append(
                at[["metric", "category", "n_benchmarks", "r_from", "r_to", "difference", "interval", "p", "paper"]]
                .rename(columns={"n_benchmarks": "benchmarks", "r_from": f"r at {small}", "r_to": f"r at {large}",
                                 "interval": "95% CI", "p": "p (Steiger)"})
                .style.hide(axis="index")
                .set_caption(f"Change of the mean cross-stage r per category, {small} to {large} "
                             "(95% CI from a paired bootstrap)")
                .format({f"r at {small}": "{:.2f}", f"r at {large}": "{:.2f}", "difference": "{:+.2f}",
                         "p (Steiger)": p_text}, na_rep="-")
                .set_properties(subset=["paper"], **{"color": "#777", "white-space": "normal"}))
        return tables

    def benchmark_chart(self):
        if not self.several:
            return None
        charts = [plots.bar_ci(rows, "difference", "ci_low", "ci_high",
                               title=f"{METRIC_NAMES[metric]}, {small} to {large}").properties(width=440, height=160)
                  for (metric, small, large), rows in self.differences.groupby(["metric", "scale_from", "scale_to"],
                                                                               sort=False)]
        return (alt.vconcat(*charts).resolve_scale(y="shared")
                .properties(title="Change of cross-stage r per benchmark, with 95% paired-bootstrap intervals"))

    def benchmark_tables(self) -> list:
        if not self.several:
            return []
        tables = []
        for (metric, small, large), rows in self.differences.groupby(["metric", "scale_from", "scale_to"], sort=False):
            at = rows.set_index(["category", "benchmark"])
            table = pd.DataFrame({
                f"r at {small}": at["r_from"], f"r at {large}": at["r_to"], "difference": at["difference"],
                "95% CI": interval(at), "p (Holm)": at["p_holm"], "Steiger z": at["steiger_z"],
                "Steiger p": at["steiger_p"], "Zou 95% CI": interval(at, "zou_low", "zou_high")})
            tables.append(table.style.set_caption(f"Cross-stage {METRIC_NAMES[metric]} r at {small} and {large} and "
                                                  "its change (95% CI from a paired bootstrap)")
                          .format("{:.2f}", subset=[f"r at {small}", f"r at {large}", "difference", "Steiger z"],
                                  na_rep="-")
                          .format(p_text, subset=["p (Holm)", "Steiger p"]))
        return tables

    def coherence_chart(self):
        coherence = self.coherence
        view = coherence.assign(metric=coherence["metric"].map(METRIC_NAMES), kind=coherence["kind"].map(KINDS))
        base = alt.Chart().encode(
            x=alt.X("kind:N", sort=list(KINDS.values()), title=None, axis=alt.Axis(labelAngle=-30)),
            xOffset=alt.XOffset("scale:N", sort=self.scales),
            color=alt.Color("scale:N", sort=self.scales,
                            scale=alt.Scale(range=["#9ecae1", "#08519c", "#6baed6", "#3182bd"])))
        points = base.mark_circle(size=45, opacity=1).encode(
            y=alt.Y("mean_r:Q", title="mean coherence r", scale=alt.Scale(domain=[-1, 1])),
            tooltip=["metric", "category", "kind", "scale", "n_pairs", alt.Tooltip("mean_r:Q", format=".2f"),
                     alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f")])
        rules = base.mark_rule(strokeWidth=2).encode(y="ci_low:Q", y2="ci_high:Q")
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(y=alt.datum(0))
        panel = alt.layer(zero, rules, points, data=view).properties(width=115, height=170)
        return (panel.facet(row=alt.Row("metric:N", sort=["accuracy", "confidence"], title=None),
                            column=alt.Column("category:N", sort=list(plots.CATEGORY_ORDER), title=None))
                .properties(title="Intra-category coherence with 95% bootstrap intervals, per scale"))

    def coherence_table(self):
        frames, quote = {}, self.quote
        for scale in self.scales:
            at = self.coherence[self.coherence["scale"] == scale].set_index(["metric", "category", "kind"])
            frames[scale] = pd.DataFrame({
                "pairs": at["n_pairs"], "mean r": at["mean_r"], "95% CI": interval(at),
                "paper": [quote.value("coherence_mean_r", scale, metric=m, category=c, kind=k) for m, c, k in at.index]})
        wide = pd.concat(frames, axis=1)
        # The paper's confidence coherence [S] does not say which kind it is: it gets a row of its own.
        for category in plots.CATEGORY_ORDER:
            quoted = {(scale, "paper"): quote.value("coherence_mean_r", scale, metric="confidence", category=category,
                                                    kind="") for scale in self.scales}
            if any(quoted.values()):
                wide.loc[("confidence", category, "not stated"), list(quoted)] = list(quoted.values())
        rows = [(m, c, k) for m in ("accuracy", "confidence") for c in plots.CATEGORY_ORDER
                for k in list(KINDS) + ["not stated"] if (m, c, k) in wide.index]
        wide = wide.loc[rows].rename(index=METRIC_NAMES, level="metric").rename(index=KINDS, level="kind")
        wide = wide.fillna({c: "" for c in wide.columns if c[1] == "paper"})
        return (wide.style.set_caption("Mean intra-category coherence")
                .format("{:.2f}", subset=[c for c in wide.columns if c[1] == "mean r"], na_rep="-")
                .format("{:.0f}", subset=[c for c in wide.columns if c[1] == "pairs"], na_rep="-")
                .format(na_rep="-", subset=[c for c in wide.columns if c[1] == "95% CI"])
                .set_properties(subset=[c for c in wide.columns if c[1] == "paper"], **{"color": "#777"}))

    def matrices_chart(self):
        charts = []
        for scale in self.scales:
            at = self.matrices[self.matrices["scale"] == scale]
            order = list(pd.unique(at["benchmark_i"]))
            pt, sft = (at[at["stage"] == stage].pivot(index="benchmark_i", columns="benchmark_j", values="r")
                       .reindex(index=order, columns=order) for stage in plots.STAGE_ORDER)
            upper = np.triu(np.ones(pt.shape, dtype=bool), 1)
            split = pt.where(~upper, sft)  # PT below the diagonal, SFT above
            charts.append(plots.heatmap(split, title=f"{scale}: PT below the diagonal, SFT above")
                          .properties(width=330, height=330))
        return alt.vconcat(*charts).properties(title="Cross-benchmark confidence correlations")

    def similarity_table(self):
        return (self.similarity[["scale", "n_benchmarks", "n_entries", "r", "p_mantel", "p_naive"]]
                .rename(columns={"n_benchmarks": "benchmarks", "n_entries": "pairs", "p_mantel": "p (Mantel)",
                                 "p_naive": "p (naive)"})
                .style.hide(axis="index").set_caption("Similarity of the PT and SFT cross-benchmark confidence matrices")
                .format({"r": "{:.2f}", "p (Mantel)": p_text, "p (naive)": "{:.1e}"}))
