"""Ours beside the paper: every number the paper reports next to the same quantity computed on our results."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .. import analysis, report, results
from ..analysis.comparison import agreement_summary, compare_with_paper
from ..analysis.tables import scale_order
from ..config import load_config
from ..model import count_parameters

QUANTITIES = {
    "transfer_mean_r": "Mean cross-stage transfer (RQ1)",
    "transfer_r": "Accuracy transfer of single benchmarks (RQ1, RQ2)",
    "coherence_mean_r": "Intra-category coherence (RQ3)",
    "matrix_similarity_r": "PT against SFT confidence matrices (RQ3)",
    "r_align": "Alignment of accuracy and confidence, r_align (RQ4)",
    "alignment_persistence_r": "Alignment persistence from PT to SFT (RQ4)",
    "web_source_difference_pp": "FineWeb-Edu-style minus RefinedWeb-style accuracy (data effects)",
    "code_share_r": "Correlation with the code share (data effects)",
}
MARKS = {"P": "paper's own text", "S": "secondary write-up, approximate"}


class PaperComparison:
    """The comparison table (analysis.comparison) and what differs between the two studies."""

    def __init__(self, results_dir: str, preset: str, n_boot: int = report.N_BOOT):
        self.cfg = report.study_config(results_dir, preset)
        scores = self.scores = results.table(results_dir, "scores")
        self.runs = results.table(results_dir, "runs")
        self.items = results.table(results_dir, "items")
        self.scales = scale_order(scores)
        self.comparison = compare_with_paper(scores, n_boot=n_boot)
        self.summary = agreement_summary(self.comparison)
        paper = analysis.paper_numbers()
        self.paper_scales = list(paper.sort_values("scale_rank")["scale"].unique())

    def facts(self) -> dict[str, str]:
        scales, paper_scales = self.scales, self.paper_scales
        matched = [scales[0], scales[-1]] if len(scales) > 1 else scales
        overall = self.summary.set_index("quantity").loc["all"]
        comparison = self.comparison
        return {
            "pairs": " and ".join(f"its {p} with our {o}" for p, o in zip(paper_scales, matched, strict=False)),
            "one_scale": ("" if len(scales) > 1 else
                          f"; this study has one scale, so the paper's {paper_scales[-1]} numbers have no "
                          "counterpart"),
            "marks": "; ".join(f"[{k}] {v}" for k, v in MARKS.items()),
            "n_mixtures": self.scores["mixture"].nunique(),
            "numbers": int(overall["numbers"]),
            "computed_numbers": comparison.loc[comparison["ours"].notna(), "number"].nunique(),
            "computed": int(overall["computed"]), "same_sign": int(overall["same_sign"]),
            "same_sign_share": f"{overall['same_sign_share']:.0%}", "in_ci": int(overall["paper_in_ci"]),
            "with_ci": int(overall["with_ci"]), "in_ci_share": f"{overall['paper_in_ci_share']:.0%}",
            "differences": self._differences(),
        }

    def _differences(self) -> str:
        """Why a miniature can differ: one bullet per way the two studies differ, with our numbers."""
        cfg, human = self.cfg, report.human
        paper_cfg = load_config("paper")
        ours = report.scales_table(cfg)
        # the paper's shapes as our `paper` preset records them
        theirs = pd.DataFrame([
            {"scale": name, "parameters": count_parameters(scale.model)["total"],
             "PT tokens": scale.pretrain.max_steps * scale.pretrain.batch_size * scale.pretrain.seq_len}
            for name, scale in paper_cfg.scales.items()])
        theirs["tokens per parameter"] = theirs["PT tokens"] / theirs["parameters"]
        benchmarks = report.benchmarks_table(self.items)
        noise = analysis.signal_to_noise(self.scores, "accuracy")
        item_se = np.sqrt(0.25 / benchmarks["items scored"])  # the standard error of an accuracy near 50%
        largest, their_largest = ours.iloc[ours["parameters"].argmax()], theirs.iloc[theirs["parameters"].argmax()]
        bullets = [
            f"**Scale.** Our models have {' and '.join(human(p) for p in ours['parameters'])} parameters; the "
            f"paper's have {' and '.join(human(p) for p in theirs['parameters'])}. Our largest is "
            f"{their_largest['parameters'] / largest['parameters']:,.0f} times smaller than the paper's. The "
            "paper's own finding is that transfer changes with scale, so a model this small may sit in a "
            "different regime.",
            f"**Pretraining tokens.** Ours see {' and '.join(human(t) for t in ours['PT tokens'])} tokens "
            f"({', '.join(f'{x:.2g}' for x in ours['tokens per parameter'])} per parameter); the paper's shapes, "
            f"as our `paper` preset records them, see {' and '.join(human(t) for t in theirs['PT tokens'])} "
            f"({', '.join(f'{x:.0f}' for x in theirs['tokens per parameter'])} per parameter). Barely trained "
            "models score near chance on most benchmarks, where a mixture's effect is small against noise.",
            "**Items per benchmark.** We score "
            + (f"at most {cfg.eval.items_per_benchmark} items per benchmark" if cfg.eval.items_per_benchmark
               else "every item")
            + f" (the splits hold {benchmarks['items'].min():,} to {benchmarks['items'].max():,}). An accuracy "
            f"near 50% then has a standard error of about {item_se.median() * 100:.1f} points, while our "
            f"mixtures differ on a median benchmark by {noise['between_mixture_sd'].median() * 100:.1f} points "
            "(standard deviation across mixtures). The share of benchmark cells whose mixture spread is below "
            f"the item noise is {(noise['snr_items'] < 1).mean():.0%}.",
            "**Fine-tuning data.** We fine-tune on "
            + (f"{cfg.sft_data.max_examples:,} examples of" if cfg.sft_data.max_examples else "all of")
            + f" `{cfg.sft_data.dataset}`; the paper on all of `{paper_cfg.sft_data.dataset}`.",
            f"**Pretraining data.** Our pools come from `{cfg.data.source}` data ("
            + (f"{cfg.data.docs_per_pool:,} documents per pool, " if cfg.data.docs_per_pool else "")
            + f"{human(cfg.data.tokens_per_mixture)} tokens per mixture), with local stand-ins for RefinedWeb, "
            "FineWeb-Edu and DCLM filtering; the paper used the real corpora.",
            f"**Seeds.** This study trained {report.counted(len(cfg.seeds), 'seed')} per mixture; the paper, as "
            "far as is known, one. With one seed, a mixture's effect and the luck of its training run cannot be "
            "told apart.",
            f"**Compute.** The whole study took {self.runs['seconds'].sum() / 3600:.1f} hours of run time "
            f"({len(self.runs)} runs); the paper's, by its shapes and tokens, is many orders of magnitude more.",
        ]
        return "\n".join(f"- {b}" for b in bullets)

    # --- tables and charts ------------------------------------------------------------------------------

    def summary_table(self):
        summary = self.summary
        return pd.DataFrame({
            "quantity": summary["quantity"].map(QUANTITIES).fillna(summary["quantity"]),
            "paper numbers": summary["numbers"],
            "rows computed": summary["computed"].astype(str) + " of " + summary["rows"].astype(str),
            "same sign": summary["same_sign"].astype(str) + " of " + summary["computed"].astype(str),
            "paper inside our interval": summary["paper_in_ci"].astype(str) + " of " + summary["with_ci"].astype(str),
        }).style.hide(axis="index")

    def correlations_chart(self):
        comparison = self.comparison
        r_rows = comparison[(comparison["unit"] == "r") & comparison["ours"].notna()].assign(
            quantity_name=lambda t: t["quantity"].map(QUANTITIES),
            label=lambda t: t[["category", "benchmark", "stage", "kind", "reading"]].agg(" ".join, axis=1).str.strip())
        base = alt.Chart(r_rows).encode(x=alt.X("paper:Q", scale=alt.Scale(domain=[-1, 1]), title="the paper's r"))
        scheme = alt.Scale(scheme="dark2")  # not the category palette: these colours are quantities
        points = base.mark_circle(size=55, opacity=0.85).encode(
            y=alt.Y("ours:Q", scale=alt.Scale(domain=[-1, 1]), title="our r"),
            color=alt.Color("quantity_name:N", title=None, scale=scheme,
                            legend=alt.Legend(orient="bottom", columns=1, labelLimit=500)),
            tooltip=["quantity_name", "label", "paper_scale", "scale", alt.Tooltip("paper:Q", format=".2f"),
                     alt.Tooltip("ours:Q", format=".2f"), alt.Tooltip("ci_low:Q", format=".2f"),
                     alt.Tooltip("ci_high:Q", format=".2f")])
        intervals = base.mark_rule(opacity=0.35).encode(
            y="ci_low:Q", y2="ci_high:Q", color=alt.Color("quantity_name:N", title=None, scale=scheme))
        diagonal = alt.Chart(pd.DataFrame({"v": [-1, 1]})).mark_line(color="#999", strokeDash=[4, 4]).encode(
            x="v:Q", y="v:Q")
        axes = alt.Chart(pd.DataFrame({"v": [0]})).mark_rule(color="#ccc")
        return (alt.layer(axes.encode(x="v:Q"), axes.encode(y="v:Q"), diagonal, intervals, points)
                .properties(width=420, height=420, title="Every correlation of the paper against ours"))

    def quantity_table(self, quantity: str):
        """The comparison rows of one quantity: only the columns that vary are kept; None if it has none."""
        table = self.comparison[self.comparison["quantity"] == quantity]
        if table.empty:
            return None
        shown = pd.DataFrame({
            **{k: table[k] for k in ("metric", "category", "benchmark", "stage", "kind") if table[k].ne("").any()},
            "paper": [f"{v:.2f} [{m}]" for v, m in zip(table["paper"], table["mark"], strict=True)],
            "paper scale": table["paper_scale"],
            "our scale": table["scale"].fillna("-"),
            **({"reading": table["reading"]} if table["reading"].ne("").any() else {}),
            "ours": table["ours"],
            "95% interval": report.interval(table).to_list(),
            "p": table["p"],
            "same sign": table["same_sign"].map(_tick),
            "paper inside interval": table["paper_in_ci"].map(_tick),
        })
        notes = table["note"].where(table["note"].ne(""))
        if notes.notna().any():
            shown["note"] = notes.fillna("")
        # "accuracy~confidence" may break after its "~" (a zero-width space), so the table fits the column
        wrap = {"metric": lambda m: m.replace("~", "~\u200b")} if "metric" in shown else {}
        return shown.style.hide(axis="index").format({"ours": "{:.2f}", "p": "{:.3f}", **wrap}, na_rep="-")


def _tick(value) -> str:
    return "-" if pd.isna(value) else "yes" if value else "no"
