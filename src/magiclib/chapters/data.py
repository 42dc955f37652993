"""Data: the pools, what the web filters kept, decontamination, and the mixtures as built."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .. import plots, report, results
from ..benchmarks import BENCHMARKS

# Readable names for the pipeline's stages, in the order the documents pass through them.
STAGE_LABELS = {"sample": "sampled", "heuristic": "heuristic rules", "exact_dedup": "exact dedup",
                "near_dedup": "near dedup", "edu": "educational classifier", "quality": "quality classifier",
                "decontam": "decontamination"}


class Data:
    """The data-pipeline reports of one study (results.data_report)."""

    def __init__(self, results_dir: str, preset: str):
        self.cfg = report.study_config(results_dir, preset)
        self.filters = results.data_report(results_dir, "filters")
        self.examples = results.data_report(results_dir, "examples")
        self.decontam = results.data_report(results_dir, "decontam")
        self.mixtures = results.data_report(results_dir, "mixtures")
        filters = self.filters
        self.stage_order = [STAGE_LABELS.get(s, s) for s in pd.unique(filters["stage"])]
        self.web_sources = list(self.cfg.web_sources)
        self.labels = {key: web.label for key, web in self.cfg.web_sources.items()}
        self.sampled = filters[filters["stage"] == "sample"].set_index("pool")
        self.final = filters[filters["stage"] == "decontam"].set_index("pool")
        self.roles = self.mixtures.drop_duplicates("pool").set_index("pool")["role"]
        web = filters[filters["pool"].isin(self.web_sources)].copy()
        web["stage"] = web["stage"].map(lambda s: STAGE_LABELS.get(s, s))
        web["remaining"] = web["docs_out"] / web.groupby("pool")["docs_out"].transform("first")
        web["removed"] = (web["docs_in"] - web["docs_out"]).where(web["stage"] != "sampled")
        self.web = web
        self.checked = self.final.assign(removed=self.final["docs_in"] - self.final["docs_out"])
        self.seed = self.mixtures["seed"].min()
        built = self.mixtures[self.mixtures["seed"] == self.seed].copy()
        built["deviation"] = built["actual_share"] - built["target_share"]
        self.built = built

    def facts(self) -> dict[str, str]:
        cfg, counts = self.cfg, self.roles.value_counts()
        shared_chain = "heuristic" in set(self.filters["stage"])
        return {
            "n_pools": len(self.final), "n_web": counts.get("web", 0), "n_code": counts.get("code", 0),
            "n_curated": counts.get("curated", 0), "docs_per_pool": f"{cfg.data.docs_per_pool:,}",
            "web_chain": ("The web sources all start from the same sample of one raw web pool and differ only by "
                          "the filters shown in the next section." if shared_chain else
                          "Each web source is its own, already filtered dataset from the hub, so it is only "
                          "sampled and decontaminated here."),
            "web_labels": "; ".join(f"**{key}** is {label}" for key, label in self.labels.items()),
            "web_kept": self._web_kept(), "dropped_nothing": self._dropped_nothing(),
            "ngram": cfg.data.decontam_ngram, "decontam": self._decontam(),
            "mixtures_built": self._mixtures_built(), "epochs": self._epochs(),
        }

    def _web_kept(self) -> str:
        lines = []
        for key in self.web_sources:
            rows = self.web[self.web["pool"] == key]
            steps = rows[rows["stage"] != "sampled"]
            first, last = rows.iloc[0], rows.iloc[-1]
            line = (f"- **{key}** keeps {last['docs_out']:,} of the {first['docs_out']:,} sampled documents "
                    f"({last['docs_out'] / first['docs_out']:.0%}, about {last['tokens_out']:,} tokens)")
            if steps["removed"].max() > 0:
                worst = steps.loc[steps["removed"].idxmax()]
                line += f"; the stage that removes most is {worst['stage']} ({worst['removed']:,.0f} documents)."
            else:
                line += "; no stage removes any document."
            lines.append(line)
        return "\n".join(lines)

    def _removed(self, stage: str) -> int:
        rows = self.filters[self.filters["stage"] == stage]
        # a stage shared by the web sources logs one identical row per source: count it once
        if stage == "decontam":
            return int((rows["docs_in"] - rows["docs_out"]).sum())
        return int(rows["docs_in"].iloc[0] - rows["docs_out"].iloc[0])

    def _pools_seen(self, stage: str) -> str:
        return ", ".join(pd.unique(self.filters[self.filters["stage"] == stage]["pool"]))

    def _dropped_nothing(self) -> str:
        empty = [f"{STAGE_LABELS.get(stage, stage)} (on {self._pools_seen(stage)})"
                 for stage in pd.unique(self.examples["filter"]) if self._removed(stage) == 0]
        return "Dropped nothing in this study: " + "; ".join(empty) + "." if empty else ""

    def _decontam(self) -> str:
        checked, total = self.checked, int(self.checked["removed"].sum())
        if total == 0:
            return "No document of any pool matched, so decontamination removed nothing."
        worst_pool = checked["removed"].idxmax()
        by_benchmark = self.decontam.groupby("benchmark")["docs_removed"].sum()
        return (f"It removed {total:,} documents in all ({total / checked['docs_in'].sum():.1%} of those checked). "
                f"The pool that lost most is {worst_pool} ({checked.loc[worst_pool, 'removed']:,} documents, "
                f"{checked.loc[worst_pool, 'removed'] / checked.loc[worst_pool, 'docs_in']:.1%} of it); the "
                f"benchmark whose items matched most documents is {by_benchmark.idxmax()} "
                f"({by_benchmark.max():,}). A document that matches several benchmarks counts once for each in "
                "the chart.")

    def _mixtures_built(self) -> str:
        cfg, built = self.cfg, self.built
        totals = built.groupby("mixture")["tokens"].sum()
        worst = built.loc[built["deviation"].abs().idxmax()]
        text = (f"Each mixture holds {cfg.data.tokens_per_mixture:,} pretraining tokens by design "
                + ("and every one was built with exactly that many. " if totals.nunique() == 1
                   and totals.iloc[0] == cfg.data.tokens_per_mixture else
                   f"and the mixtures as built hold {totals.min():,} to {totals.max():,}. ")
                + (f"The largest gap between a pool's realised and target token share is "
                   f"{abs(worst['deviation']) * 100:.2f} percentage points ({worst['pool']} in {worst['mixture']}). "
                   if round(abs(worst["deviation"]) * 100, 2) > 0 else
                   "Every pool's realised token share equals its target to two decimals of a percentage point. "))
        if self.mixtures["seed"].nunique() > 1:
            text += f"The study has {self.mixtures['seed'].nunique()} seeds; the figures show seed {self.seed}."
        return text

    def _epochs(self) -> str:
        most = self.built.loc[self.built["epochs"].idxmax()]
        repeated = self.built[self.built["epochs"] > 1]
        return (f"The most any mixture uses of a pool is {most['epochs']:.2f} epochs ({most['pool']} in "
                f"{most['mixture']}). "
                + (f"{len(repeated)} (mixture, pool) pairs exceed one epoch, so their documents are seen more "
                   "than once." if len(repeated) else
                   "No pool exceeds one epoch, so no pretraining document is seen twice."))

    # --- tables and charts ------------------------------------------------------------------------------

    def pools_table(self):
        final, sampled = self.final, self.sampled
        pools = pd.DataFrame({
            "role": self.roles.reindex(final.index),
            "documents available": sampled["docs_in"].reindex(final.index),
            "documents sampled": sampled["docs_out"].reindex(final.index),
            "documents kept": final["docs_out"],
            "tokens kept (approx.)": final["tokens_out"],
        }).rename_axis("pool").reset_index()
        return (pools.style.hide(axis="index").set_caption("Pools: documents before and after filtering")
                .format({c: "{:,.0f}" for c in pools.columns[2:]}, na_rep="-"))

    def funnel_chart(self):
        web, funnels = self.web, []
        for key in self.web_sources:
            base = alt.Chart(web[web["pool"] == key]).encode(y=alt.Y("stage:N", sort=self.stage_order, title=None))
            bars = base.mark_bar(color="#9D755D").encode(  # the web colour of plots.component_scale
                x=alt.X("docs_out:Q", title="documents remaining"),
                tooltip=["stage", alt.Tooltip("docs_in:Q", title="documents in", format=","),
                         alt.Tooltip("docs_out:Q", title="documents out", format=","),
                         alt.Tooltip("remaining:Q", title="share of sampled", format=".1%"),
                         alt.Tooltip("tokens_out:Q", title="tokens out (approx.)", format=",")])
            text = base.mark_text(align="left", dx=3, fontSize=10).encode(
                x="docs_out:Q", text=alt.Text("remaining:Q", format=".0%"))
            funnels.append(alt.layer(bars, text).properties(width=380, height=22 * web["stage"].nunique(),
                                                            title=f"{key}: {self.labels[key]}"))
        return alt.vconcat(*funnels).resolve_scale(x="shared")

    def stages_table(self):
        return (self.web.sort_values("pool", kind="stable")
                [["pool", "stage", "docs_in", "docs_out", "remaining", "tokens_out"]]
                .rename(columns={"pool": "web source", "docs_in": "documents in", "docs_out": "documents out",
                                 "remaining": "share of sampled", "tokens_out": "tokens out (approx.)"})
                .style.hide(axis="index").set_caption("Every stage of every web source")
                .format({"documents in": "{:,.0f}", "documents out": "{:,.0f}", "share of sampled": "{:.1%}",
                         "tokens out (approx.)": "{:,.0f}"}, na_rep="-"))

    def example_tables(self) -> list:
        """One table per filter that dropped something: its kept (scored) and dropped example documents."""
        tables, examples = [], self.examples
        for stage in pd.unique(examples["filter"]):
            removed = self._removed(stage)
            if removed == 0:
                continue
            shown = examples[examples["filter"] == stage]
            # a kept document is worth showing only with its classifier score; "passed" says nothing
            kept = shown[(shown["decision"] == "kept") & (shown["reason"] != "passed")].drop_duplicates("id")
            dropped = shown[shown["decision"] == "dropped"]
            table = pd.concat([kept, dropped])[["decision", "reason", "snippet", "id"]]
            table["snippet"] = table["snippet"].str.replace(r"\s+", " ", regex=True).str.slice(0, 200) + " ..."
            caption = (f"{STAGE_LABELS.get(stage, stage)} (on {self._pools_seen(stage)}): "
                       f"{removed:,} document{'s' if removed != 1 else ''} dropped")
            tables.append(table.style.hide(axis="index").set_caption(caption).format(escape="html")
                          .set_properties(subset=["reason"], **{"white-space": "normal", "min-width": "9em"})
                          .set_properties(subset=["snippet"], **{"white-space": "normal", "min-width": "22em"}))
        return tables

    def decontam_chart(self):
        decontam = self.decontam.assign(category=self.decontam["benchmark"].map(lambda b: BENCHMARKS[b].category))
        base = alt.Chart(decontam).encode(
            x=alt.X("benchmark:N", sort=plots.benchmark_order(decontam), title=None,
                    axis=alt.Axis(labelAngle=-45, grid=False)),
            y=alt.Y("pool:N", sort=list(self.final.index), title=None, axis=alt.Axis(grid=False)))
        cells = base.mark_rect().encode(
            color=alt.Color("docs_removed:Q", title="documents", scale=alt.Scale(scheme="oranges", domainMin=0)),
            tooltip=["pool", "benchmark", "category", alt.Tooltip("docs_removed:Q", title="documents removed")])
        counts_text = base.mark_text(fontSize=10).encode(
            text="docs_removed:Q",
            color=alt.condition(f"datum.docs_removed > {decontam['docs_removed'].max() / 2}", alt.value("white"),
                                alt.value("black")),
        ).transform_filter("datum.docs_removed > 0")
        return alt.layer(cells, counts_text).properties(
            width=19 * decontam["benchmark"].nunique(), height=24 * decontam["pool"].nunique(),
            title="Documents removed per pool and benchmark")

    def decontam_table(self):
        return (self.checked.reset_index()[["pool", "docs_in", "removed", "tokens_in", "tokens_out"]]
                .assign(share=lambda t: t["removed"] / t["docs_in"],
                        tokens_removed=lambda t: t["tokens_in"] - t["tokens_out"])
                [["pool", "docs_in", "removed", "share", "tokens_removed"]]
                .rename(columns={"docs_in": "documents checked", "removed": "documents removed",
                                 "share": "share removed", "tokens_removed": "tokens removed (approx.)"})
                .style.hide(axis="index").set_caption("Decontamination per pool")
                .format({"documents checked": "{:,}", "documents removed": "{:,}", "share removed": "{:.1%}",
                         "tokens removed (approx.)": "{:,.0f}"}))

    def shares_chart(self):
        built = self.built
        diagonal = alt.Chart(pd.DataFrame({"x": [0, built["target_share"].max()]})).mark_line(
            color="#999", strokeDash=[4, 4]).encode(x="x:Q", y="x:Q")
        points = alt.Chart(built).mark_circle(size=60, opacity=0.8).encode(
            x=alt.X("target_share:Q", title="target share of tokens", axis=alt.Axis(format="%")),
            y=alt.Y("actual_share:Q", title="realised share of tokens", axis=alt.Axis(format="%")),
            color=alt.Color("role:N", scale=plots.component_scale(), title=None),
            tooltip=["mixture", "pool", "role", alt.Tooltip("target_share:Q", format=".2%"),
                     alt.Tooltip("actual_share:Q", format=".2%"), alt.Tooltip("tokens:Q", format=",")])
        return alt.layer(diagonal, points).properties(width=320, height=320,
                                                      title="Realised against target token share, per pool")

    def epochs_chart(self):
        built = self.built
        base = alt.Chart(built).encode(
            x=alt.X("pool:N", sort=list(self.final.index), title=None, axis=alt.Axis(labelAngle=-45, grid=False)),
            y=alt.Y("mixture:N", sort=self.cfg.mixture_names, title=None, axis=alt.Axis(grid=False)))
        cells = base.mark_rect().encode(
            color=alt.Color("epochs:Q", scale=alt.Scale(scheme="blues", domainMin=0)),
            tooltip=["mixture", "pool", "role", alt.Tooltip("epochs:Q", format=".3f"),
                     alt.Tooltip("docs:Q", title="documents drawn", format=",")])
        values = base.mark_text(fontSize=10).encode(
            text=alt.Text("epochs:Q", format=".2f"),
            color=alt.condition(f"datum.epochs > {0.6 * built['epochs'].max()}", alt.value("white"),
                                alt.value("black")))
        return alt.layer(cells, values).properties(width=48 * built["pool"].nunique(),
                                                   height=24 * built["mixture"].nunique(),
                                                   title="Epochs of each pool in each mixture")
