"""Training: loss curves, final losses, throughput and run times of every pretraining and fine-tuning run."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .. import plots, report, results
from ..analysis.tables import scale_order

STEP_NAMES = {"pretrain": "pretraining", "sft": "fine-tuning", "evaluate": "evaluation"}
STEP_COLORS = alt.Scale(domain=list(STEP_NAMES.values()), range=["#9D755D", "#72B7B2", "#E45756"])


class Training:
    """The runs and loss tables of one study."""

    def __init__(self, results_dir: str, preset: str):
        self.runs = results.table(results_dir, "runs")
        self.losses = results.table(results_dir, "losses")
        self.scales = scale_order(self.runs)
        self.training = self.runs[self.runs["kind"].isin(["pretrain", "sft"])].copy()
        self.final = (self.training.groupby(["scale", "stage", "mixture", "web_source", "code_share"], sort=False)
                      ["summary_final_loss"].mean().rename("final loss").reset_index())

    def facts(self) -> dict[str, str]:
        runs, counts = self.runs, self.training.groupby("stage").size()
        lines = []
        for (scale, stage), group in sorted(self.final.groupby(["scale", "stage"]),
                                            key=lambda g: self.scales.index(g[0][0])):
            best, worst = group.loc[group["final loss"].idxmin()], group.loc[group["final loss"].idxmax()]
            lines.append(f"- {scale}, {stage}: from {best['final loss']:.3f} ({best['mixture']}) "
                         f"to {worst['final loss']:.3f} ({worst['mixture']})")
        by_kind = runs.groupby("kind")["seconds"].sum()
        return {
            "n_pt": counts.get("PT", 0), "n_sft": counts.get("SFT", 0), "n_mixtures": runs["mixture"].nunique(),
            "n_scales": report.counted(len(self.scales), "scale"), "scales": ", ".join(self.scales),
            "n_seeds": report.counted(runs["seed"].nunique(), "seed"),
            "final_losses": "\n".join(lines),
            "n_steps": len(runs), "minutes": f"{runs['seconds'].sum() / 60:.1f}",
            "minutes_by_step": ", ".join(f"{STEP_NAMES.get(kind, kind)} {seconds / 60:.1f}"
                                         for kind, seconds in by_kind.items()),
        }

    def _facets(self, chart: alt.Chart) -> alt.FacetChart:
        return chart.facet(row=alt.Row("stage:N", sort=list(plots.STAGE_ORDER), title=None),
                           column=alt.Column("scale:N", sort=self.scales, title=None))

    def loss_curves_chart(self):
        curves = plots.loss_curves(self.losses, color="mixture").encode(detail="seed:N").properties(
            width=190, height=200)
        return (self._facets(curves).resolve_scale(x="independent", y="independent")
                .properties(title="Training loss by step"))

    def final_loss_chart(self):
        dots = alt.Chart(self.final).mark_point(filled=True, size=70).encode(
            x=alt.X("code_share:Q", title="code share of pretraining tokens", axis=alt.Axis(format="%"),
                    scale=alt.Scale(zero=False, padding=12)),
            y=alt.Y("final loss:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("web_source:N", title="web source"),
            tooltip=["mixture", "scale", "stage", alt.Tooltip("final loss:Q", format=".4f")],
        ).properties(width=170, height=180)
        return (self._facets(dots).resolve_scale(y="independent")
                .properties(title="Final loss by code share and web source"))

    def final_loss_table(self):
        wide = self.final.pivot_table(index="mixture", columns=["scale", "stage"], values="final loss", sort=False)
        wide = wide.reindex(columns=pd.MultiIndex.from_product([self.scales, list(plots.STAGE_ORDER)])).dropna(
            axis=1, how="all")
        wide.columns.names = ["scale", "stage"]
        return wide.style.format("{:.3f}", na_rep="-").set_caption(
            "Final training loss per mixture (mean over seeds)")

    def throughput_table(self):
        runs = self.runs
        summary = (runs.assign(step=runs["kind"].map(lambda k: STEP_NAMES.get(k, k)))
                   .groupby(["scale", "step"], sort=False)
                   .agg(runs=("seconds", "size"), tokens=("summary_tokens_seen", "median"),
                        tokens_per_s=("summary_tokens_per_s", "median"), mfu=("summary_mfu", "median"),
                        train_seconds=("summary_seconds", "median"), seconds=("seconds", "median"),
                        total=("seconds", "sum"))
                   .reset_index())
        summary = summary.sort_values("scale", key=lambda s: s.map(self.scales.index), kind="stable")
        return (summary.rename(columns={"tokens": "tokens per run", "tokens_per_s": "tokens/s", "mfu": "MFU",
                                        "train_seconds": "training loop (s)", "seconds": "whole run (s)",
                                        "total": "all runs (min)"})
                .assign(**{"all runs (min)": lambda t: t["all runs (min)"] / 60})
                .style.hide(axis="index").set_caption("Per scale and step: medians over runs, except the total")
                .format({"tokens per run": "{:,.0f}", "tokens/s": "{:,.0f}", "MFU": "{:.1%}",
                         "training loop (s)": "{:.1f}", "whole run (s)": "{:.1f}", "all runs (min)": "{:.1f}"},
                        na_rep="-"))

    def wall_time_chart(self):
        timing = self.runs.assign(step=self.runs["kind"].map(lambda k: STEP_NAMES.get(k, k)))
        boxes = [alt.Chart(timing[timing["scale"] == scale]).mark_boxplot(extent="min-max", size=18).encode(
            x=alt.X("seconds:Q", title="wall time per run (s)"),
            y=alt.Y("step:N", title=None, sort=[STEP_NAMES[k] for k in ("pretrain", "sft", "evaluate")]),
            color=alt.Color("step:N", scale=STEP_COLORS, legend=None),
        ).properties(width=380, height=90, title=scale) for scale in self.scales]
        return alt.vconcat(*boxes).resolve_scale(x="shared").properties(title="Wall time per run, by scale and step")

    def throughput_chart(self):
        throughput = self.training.assign(step=self.training["kind"].map(STEP_NAMES))
        return alt.Chart(throughput).mark_circle(size=50, opacity=0.7).encode(
            x=alt.X("scale:N", sort=self.scales, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("summary_tokens_per_s:Q", title="tokens per second (training loop)"),
            color=alt.Color("step:N", title=None,
                            scale=alt.Scale(domain=STEP_COLORS.domain[:2], range=STEP_COLORS.range[:2])),
            xOffset="step:N",
            tooltip=["mixture", "scale", "step",
                     alt.Tooltip("summary_tokens_per_s:Q", format=",.0f", title="tokens/s"),
                     alt.Tooltip("summary_mfu:Q", format=".1%", title="MFU")],
        ).properties(width=300, height=220, title="Throughput of every run")
