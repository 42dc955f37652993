"""RQ1: do the mixtures' rankings persist from pretraining (PT) to fine-tuning (SFT), per benchmark and category?"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .. import analysis, plots, report
from ..analysis.tables import benchmark_order
from ..report import METRIC_NAMES, interval, p_is, p_text

CATEGORY_COLORS = alt.Scale(domain=list(plots.CATEGORY_ORDER) + ["all"],
                            range=list(plots.CATEGORY_COLORS) + ["#555555"])


class Persistence(report.ScoresChapter):
    """Cross-stage transfer per benchmark and per category, with signal to noise, of one study."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        super().__init__(results_dir)
        scores = self.scores
        self.transfer = analysis.transfer_table(scores, n_boot=n_boot)
        # one family per metric: every benchmark at every scale
        self.pearson = analysis.adjust_pvalues(
            self.transfer[self.transfer["method"] == "pearson"].reset_index(drop=True), by="metric")
        self.categories = analysis.adjust_pvalues(analysis.category_transfer(scores, n_boot=n_boot), by="metric")
        noise = analysis.signal_to_noise(scores)
        self.several_seeds = noise["n_seeds"].max() > 1
        self.noise = (noise.groupby(["scale", "stage", "metric"], sort=False)
                      .agg(benchmarks=("benchmark", "size"),
                           median_snr_items=("snr_items", "median"),
                           above_one=("snr_items", lambda s: int((s > 1).sum())),
                           **({"median_snr_seed": ("snr_seed", "median")} if self.several_seeds else {}))
                      .reset_index())

    def facts(self) -> dict[str, str]:
        facts = {
            "n_mixtures": self.n_mixtures, "critical_r": f"{report.critical_r(self.n_mixtures):.2f}",
            "n_tests": self.pearson.groupby("metric").size().max(),
            "above_noise": "\n".join(
                f"- {scale}: " + ", ".join(f"{r.stage}: {r.above_one} of {r.benchmarks}" for r in self.noise[
                    (self.noise["scale"] == scale) & (self.noise["metric"] == "accuracy")].itertuples())
                for scale in self.scales),
            "seed_noise": ("" if self.several_seeds else
                           "The study has one seed per mixture, so the spread between seeds, a second noise "
                           "floor, is not measured; with several seeds the table adds it."),
            "overall": self._overall(),
            "mixtures_missing": "" if self._reported_benchmarks() else
            "None of the benchmarks the paper reports individually is scored in this study.",
        }
        for metric in METRIC_NAMES:
            facts[f"summary_{metric}"] = self._benchmark_summary(metric)
        return facts

    def _overall(self) -> str:
        lines, categories = [], self.categories
        for scale in self.scales:
            for metric in ("accuracy", "confidence"):
                row = categories[(categories["scale"] == scale) & (categories["metric"] == metric)
                                 & (categories["category"] == "all")].iloc[0]
                verdict = ("clears noise after Holm adjustment" if row["p_holm"] < 0.05 else
                           "does not clear noise after Holm adjustment" if row["p"] < 0.05 else
                           "is not distinguishable from zero")
                lines.append(f"- {scale}, {METRIC_NAMES[metric]}: mean r = {row['mean_r']:.2f} "
                             f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}], {p_is(row['p'])}; it {verdict}.")
        return "\n".join(lines)

    def _benchmark_summary(self, metric: str) -> str:
        rows, lines = self.pearson[self.pearson["metric"] == metric], []
        for scale in self.scales:
            at = rows[rows["scale"] == scale]
            defined = at.dropna(subset=["r"])
            text = (f"- {scale}: {(defined['p'] < 0.05).sum()} of {len(defined)} benchmarks have p < .05 before "
                    f"adjustment (about {0.05 * len(defined):.1f} would by chance alone), "
                    f"{(defined['p_holm'] < 0.05).sum()} after Holm")
            if len(defined):
                top, bottom = defined.loc[defined["r"].idxmax()], defined.loc[defined["r"].idxmin()]
                text += (f"; the highest r is {top['benchmark']} ({top['r']:.2f}), the lowest "
                         f"{bottom['benchmark']} ({bottom['r']:.2f})")
            if len(at) > len(defined):
                text += f"; {len(at) - len(defined)} without a correlation (constant scores)"
            lines.append(text + ".")
        return "\n".join(lines)

    # --- tables and charts ------------------------------------------------------------------------------

    def noise_table(self):
        summary = self.noise
        return (summary.assign(metric=summary["metric"].map(METRIC_NAMES))
                .rename(columns={"median_snr_items": "median SD(mixtures) / item SE",
                                 "above_one": "benchmarks with ratio > 1",
                                 "median_snr_seed": "median SD(mixtures) / SD(seeds)"})
                .style.hide(axis="index").set_caption("Signal to noise per scale, stage and metric")
                .format({"median SD(mixtures) / item SE": "{:.2f}", "median SD(mixtures) / SD(seeds)": "{:.2f}"},
                        na_rep="-"))

    def category_chart(self):
        order, paper, scales = list(plots.CATEGORY_ORDER) + ["all"], self.paper, self.scales
        quoted = paper[(paper["quantity"] == "transfer_mean_r") & (paper["scale_rank"] < len(scales))]
        quoted = quoted.assign(scale=[scales[rank] for rank in quoted["scale_rank"]],
                               paper_at=quoted["scale"] + " [" + quoted["mark"] + "]")
        view = (self.categories.merge(quoted[["scale", "metric", "category", "value", "paper_at"]]
                                      .rename(columns={"value": "paper_r"}), on=["scale", "metric", "category"],
                                      how="left")
                .assign(metric=lambda t: t["metric"].map(METRIC_NAMES)))
        base = alt.Chart(view).encode(
            x=alt.X("category:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30)),
            color=alt.Color("category:N", scale=CATEGORY_COLORS, legend=None))
        points = base.mark_point(filled=True, size=70).encode(
            y=alt.Y("mean_r:Q", title="mean cross-stage r", scale=alt.Scale(domain=[-1, 1])),
            tooltip=["scale", "metric", "category", "n_benchmarks", alt.Tooltip("mean_r:Q", format=".2f"),
                     alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
                     alt.Tooltip("p:Q", format=".4f")])
        bars = base.mark_rule(strokeWidth=2).encode(y="ci_low:Q", y2="ci_high:Q")
        zero = alt.Chart().mark_rule(color="#999", strokeDash=[4, 4]).encode(y=alt.datum(0))
        quoted_points = base.mark_point(shape="diamond", size=60, strokeWidth=1.2).encode(
            y="paper_r:Q", color=alt.value("black"),
            tooltip=["category", alt.Tooltip("paper_r:Q", title="the paper", format=".2f"),
                     alt.Tooltip("paper_at:N", title="at")])
        panel = alt.layer(zero, bars, points, quoted_points, data=view).properties(width=135, height=200)
        return (panel.facet(row=alt.Row("scale:N", sort=scales, title=None),
                            column=alt.Column("metric:N", sort=list(METRIC_NAMES.values()), title=None))
                .properties(title="Mean cross-stage r per category, with 95% bootstrap intervals"))

    def category_tables(self) -> list:
        """One table per scale: the mean r per metric and category, its interval, p-values and the paper's."""
        tables = []
        for scale in self.scales:
            at = self.categories[self.categories["scale"] == scale]
            at = at.set_index([at["metric"].map(METRIC_NAMES),
                               at["category"] + " (" + at["n_benchmarks"].astype(str) + ")"])
            at.index.names = ["metric", "category (benchmarks)"]
            table = pd.DataFrame({
                "mean r [95% CI]": [f"{r:.2f} {ci}" if pd.notna(r) else "-"
                                    for r, ci in zip(at["mean_r"], interval(at), strict=True)],
                "p": at["p"], "p (Holm)": at["p_holm"],
                "paper": [self.quote.value("transfer_mean_r", scale, with_scale=False, metric=m, category=c)
                          for m, c in zip(at["metric"], at["category"], strict=True)]}, index=at.index)
            paper_scale = self.quote.scale_of(scale)
            quoted_at = f"; paper: its {paper_scale}" if paper_scale else ""
            tables.append(table.style
                          .set_caption(f"Mean cross-stage Pearson r per category at {scale} "
                                       f"(bold: p < .05 after Holm{quoted_at})")
                          .format(p_text, subset=["p", "p (Holm)"])
                          .map(lambda p: "font-weight: bold" if p < 0.05 else "", subset=["p (Holm)"])
                          .set_properties(subset=["paper"], **{"color": "#777"}))
        return tables

    def benchmark_chart(self, metric: str):
        rows = self.pearson[self.pearson["metric"] == metric]
        charts = [plots.bar_ci(rows[rows["scale"] == scale], "r", "ci_low", "ci_high", title=scale)
                  .properties(width=440, height=160) for scale in self.scales]
        name = METRIC_NAMES[metric].replace("gold probability", "gold-probability")
        return alt.vconcat(*charts).resolve_scale(y="shared").properties(
            title=f"Cross-stage {name} r per benchmark")

    def benchmark_table(self, metric: str):
        pearson, rows = self.pearson, self.transfer[self.transfer["metric"] == metric]
        order = benchmark_order(self.scores)
        frames = {}
        for scale in self.scales:
            at = pearson[(pearson["metric"] == metric) & (pearson["scale"] == scale)].set_index("benchmark")
            ranks = rows[rows["scale"] == scale].pivot(index="benchmark", columns="method", values="r")
            frames[scale] = pd.DataFrame({
                "r": at["r"], "95% CI": interval(at), "p": at["p"], "p (Holm)": at["p_holm"],
                "Spearman": ranks["spearman"], "Kendall": ranks["kendall"]}).reindex(order)
        wide = pd.concat(frames, axis=1)
        wide.index = pd.MultiIndex.from_arrays([pearson.drop_duplicates("benchmark").set_index("benchmark")
                                                .loc[order, "category"], order], names=["category", "benchmark"])
        numbers = [c for c in wide.columns if c[1] in ("r", "Spearman", "Kendall")]
        p_columns = [c for c in wide.columns if c[1] in ("p", "p (Holm)")]
        holm = [c for c in wide.columns if c[1] == "p (Holm)"]
        return (wide.style.format("{:.2f}", subset=numbers, na_rep="-").format(p_text, subset=p_columns)
                .map(lambda p: "font-weight: bold" if p < 0.05 else "", subset=holm)
                .set_caption(f"Cross-stage {METRIC_NAMES[metric]} transfer per benchmark "
                             "(bold: p < .05 after Holm)"))

    def mixtures_chart(self):
        """PT against SFT accuracy per mixture for the benchmarks the paper reports; None if none is scored."""
        scales, shown = self.scales, self._reported_benchmarks()
        if not shown:
            return None
        means = analysis.mixture_means(self.scores, "accuracy")
        pairs = means.pivot_table(index=["scale", "benchmark", "mixture", "web_source"], columns="stage",
                                  values="value").reset_index().rename(columns={"PT": "pt", "SFT": "sft",
                                                                                "web_source": "web source"})
        r_of = self.pearson[self.pearson["metric"] == "accuracy"].set_index(["scale", "benchmark"])["r"]
        rows = []
        for benchmark in shown:
            panels = []
            for scale in scales:
                quoted = self.quote.value("transfer_r", scale, metric="accuracy", benchmark=benchmark)
                r = r_of.get((scale, benchmark), np.nan)
                title = f"{benchmark}, {scale}: " + ("no r (constant scores)" if pd.isna(r) else f"r = {r:.2f}") + (
                    f" (paper {quoted})" if quoted else "")
                panel = pairs[(pairs["scale"] == scale) & (pairs["benchmark"] == benchmark)]
                panels.append(plots.scatter_stages(panel, color="web source", title=title)
                              .properties(width=220, height=200))
            rows.append(alt.hconcat(*panels))
        return alt.vconcat(*rows).properties(title="Accuracy of each mixture after PT and after SFT")

    def _reported_benchmarks(self) -> list[str]:
        """The benchmarks whose accuracy transfer the paper reports individually, if this study scores them."""
        paper = self.paper
        return [b for b in pd.unique(paper.loc[paper["quantity"] == "transfer_r", "benchmark"])
                if b in set(self.scores["benchmark"])]
