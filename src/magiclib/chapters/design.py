"""Study design: the mixtures, the model scales and the benchmarks, as the config and results give them."""

from __future__ import annotations

import altair as alt

from .. import plots, report, results


class Design:
    """The mixtures, scales and benchmarks tables of one study."""

    def __init__(self, results_dir: str, preset: str):
        self.cfg = report.study_config(results_dir, preset)
        self.mixtures = report.mixtures_table(self.cfg)
        self.scales = report.scales_table(self.cfg)
        self.benchmarks = report.benchmarks_table(results.table(results_dir, "items"))

    def facts(self) -> dict[str, str]:
        scales, benchmarks, cfg = self.scales, self.benchmarks, self.cfg
        largest, smallest = scales["parameters"].max(), scales["parameters"].min()
        counts = benchmarks.groupby("category", sort=False).size()
        return {
            "n_mixtures": len(self.mixtures), "n_filters": self.mixtures["web filter"].nunique(),
            "curated_pools": ", ".join(cfg.data.curated_pools),
            "n_scales": report.counted(len(scales), "scale"),
            "smallest": report.human(smallest), "largest": report.human(largest),
            "apart": f", {largest / smallest:.1f}x apart" if len(scales) > 1 else "",
            "n_benchmarks": len(benchmarks), "n_categories": len(counts),
            "per_category": ", ".join(f"{name}: {n}" for name, n in counts.items()),
            "items_scored": (f"This study scores up to {cfg.eval.items_per_benchmark} items per benchmark "
                             "(a fixed-seed sample)." if cfg.eval.items_per_benchmark else
                             "This study scores every item."),
        }

    def composition_chart(self) -> alt.Chart:
        mixtures = self.mixtures
        long = mixtures.melt(id_vars=["mixture", "web source", "web filter", "code pools"],
                             value_vars=["web", "code", "curated"], var_name="component", value_name="share")
        return alt.Chart(long).mark_bar().encode(
            y=alt.Y("mixture:N", sort=list(mixtures["mixture"]), title=None),
            x=alt.X("share:Q", axis=alt.Axis(format="%"), title="share of pretraining tokens"),
            # not the category palette: these are data components, not benchmark categories
            color=alt.Color("component:N", title=None, scale=plots.component_scale()),
            order=alt.Order("component_order:Q"),
            tooltip=["mixture", "component", alt.Tooltip("share:Q", format=".0%"), "web filter", "code pools"],
        ).transform_calculate(
            component_order="indexof(['web', 'code', 'curated'], datum.component)"
        ).properties(width=420, height=22 * len(mixtures), title="Composition of the pretraining mixtures")

    def mixtures_table(self):
        return (self.mixtures.drop(columns=["web source", "curated pools"]).style.hide(axis="index")
                .format({"web": "{:.0%}", "code": "{:.0%}", "curated": "{:.0%}"}))

    def shapes_table(self):
        shape = ["scale", "d_model", "layers", "heads", "head dim", "context", "vocabulary", "parameters",
                 "non-embedding"]
        return (self.scales[shape].style.hide(axis="index").set_caption("Shapes")
                .format({"parameters": report.human, "non-embedding": report.human}))

    def budget_table(self):
        budget = ["scale", "PT steps", "PT tokens", "tokens per parameter", "PT FLOPs", "SFT epochs",
                  "SFT steps", "GPUs per run"]
        return (self.scales[budget].style.hide(axis="index").set_caption("Training budget per run")
                .format({"PT tokens": report.human, "PT FLOPs": "{:.2e}", "tokens per parameter": "{:.1f}",
                         "SFT epochs": "{:g}", "SFT steps": "{:g}", "PT steps": "{:g}"}, na_rep="-"))

    def benchmarks_table(self):
        return self.benchmarks.style.hide(axis="index").format({"items": "{:,}", "items scored": "{:,}"})
