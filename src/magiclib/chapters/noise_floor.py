"""What the data can show, shared by RQ1-RQ4 and the introduction: per benchmark and metric, is the mixture
signal above its noise floor, and only where it is, does the ranking transfer?

Built on `analysis.transfer_audit` of the study's items table (one row per scale, benchmark and metric:
naive, split, corrected and mixture-component r, reliabilities, signal tests, verdicts, planning). The
audit takes a minute or two on a mini study, so it is cached beside the tables in
`<results>/analysis/audit-<key>.parquet`; the key hashes the items file (size, mtime), the analysis code
and the options, so a changed study or a changed method recomputes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from .. import analysis, io, report, results
from ..analysis.audit import VERDICTS
from ..analysis.items import schema_columns
from ..analysis.tables import scale_order

NAMES = {**report.METRIC_NAMES, "gold_ll_char": "gold log-likelihood per character",
         "gold_ll_token": "gold log-likelihood per token", "margin_char": "margin per character",
         "gold_prob_char": "gold probability per character"}
ESTIMATES = {"naive_r": "naive r (paper-style: item and seed noise shared)",
             "split_r": "split r (item noise not shared)",
             "corrected_r": "corrected r (item noise removed)",
             "mixture_r": "mixture-component r (item and seed noise removed)"}
PERSIST, REVERSE, NO_EVIDENCE, NOT_MEASURABLE, MODELS_PERSIST, MODELS_REVERSE = VERDICTS


def _cache_key(items_path: Path, n_boot: int) -> str:
    stat = items_path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{n_boot}".encode())
    for source in sorted((Path(analysis.__file__).parent).glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def audit(results_dir: str | Path, n_boot: int = report.N_BOOT) -> pd.DataFrame:
    """The study's transfer audit (all item metrics), from the cache when the items and code are unchanged."""
    results_dir = Path(results_dir)
    items_path = results_dir / "tables" / "items.parquet"
    results.table(results_dir, "items")  # the one error message for a missing table
    cache = results_dir / "analysis" / f"audit-{_cache_key(items_path, n_boot)}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    table = analysis.transfer_audit(schema_columns(pd.read_parquet(items_path)), n_boot=n_boot)
    cache.parent.mkdir(parents=True, exist_ok=True)
    io.write_parquet(cache, table)
    return table


class NoiseFloor:
    """The audit of one study, as the facts, tables and charts RQ1-RQ4 lead with."""

    def __init__(self, results_dir: str, n_boot: int = report.N_BOOT):
        self.audit = audit(results_dir, n_boot)
        self.scales = scale_order(results.table(results_dir, "scores"))
        self.metrics = list(pd.unique(self.audit["metric"]))

    # --- summaries ----------------------------------------------------------------------------------------

    def signal(self) -> pd.DataFrame:
        """Per (scale, metric): benchmarks whose mixture signal clears its noise floor at both stages."""
        rows = []
        for (scale, metric), group in self.audit.groupby(["scale", "metric"], sort=False):
            measurable = group[group["measurable"]]
            rows.append({
                "scale": scale, "metric": NAMES.get(metric, metric), "noise floor": group["noise_floor"].iloc[0],
                "seeds": int(group["n_seeds"].max()), "items": int(group["n_items"].median()),
                "measurable": f"{len(measurable)} of {len(group)}",
                "median reliability PT / SFT": f"{_reliability(group['reliability_pt'].median())} / "
                                               f"{_reliability(group['reliability_sft'].median())}",
                "rankings persist": int((group["verdict"] == PERSIST).sum()),
                "rankings reverse": int((group["verdict"] == REVERSE).sum()),
                "model rankings persist (one seed)": int((group["verdict"] == MODELS_PERSIST).sum()),
            })
        return pd.DataFrame(rows)

    def planning(self) -> pd.DataFrame:
        """Per (scale, metric): what would make the rest measurable, from the measured components."""
        plan = analysis.planning_table(self.audit)
        return pd.DataFrame({
            "scale": plan["scale"], "metric": plan["metric"].map(lambda m: NAMES.get(m, m)),
            "measurable now": plan["measurable"].astype(str) + " of " + plan["n_benchmarks"].astype(str),
            "items now": plan["n_items"], "seeds now": plan["n_seeds"],
            "median items needed (the rest)": plan["items_needed_median"].map(_count),
            "median seeds needed (the rest)": plan["seeds_needed_median"].map(_count),
            "no finite estimate": plan["never_by_estimate"],
        })

    def transfer(self, metric: str) -> pd.DataFrame:
        """Per (scale, benchmark) of one metric: signal, then the four estimates side by side, the verdict."""
        rows = self.audit[self.audit["metric"] == metric]
        out = pd.DataFrame({
            "scale": rows["scale"], "benchmark": rows["benchmark"],
            "signal (reliability PT / SFT)": [
                f"{'above' if m else 'below'} noise ({_reliability(a)} / {_reliability(b)})" for m, a, b in
                zip(rows["measurable"], rows["reliability_pt"], rows["reliability_sft"], strict=True)],
            "naive r": rows["naive_r"].round(2),
            "split r": rows["split_r"].round(2),
            "corrected r": [_r_text(r, lo, hi) for r, lo, hi in
                            zip(rows["corrected_r"], rows["corrected_low"], rows["corrected_high"], strict=True)],
            "mixture r": [_r_text(r, lo, hi) for r, lo, hi in
                          zip(rows["mixture_r"], rows["mixture_low"], rows["mixture_high"], strict=True)],
            "p (Holm)": rows["transfer_p_holm"].map(report.p_text),
            "verdict": rows["verdict"],
        })
        return out.reset_index(drop=True)

    def transfer_table(self) -> pd.DataFrame:
        """`transfer` of every metric in one table, with a metric column."""
        return pd.concat([self.transfer(m).assign(metric=NAMES.get(m, m)) for m in self.metrics],
                         ignore_index=True).pipe(lambda t: t[["metric", *t.columns[:-1]]])

    @property
    def best_metric(self) -> str:
        """The metric measurable on the most (scale, benchmark) cells (ties: the first in the audit's order)."""
        share = self.audit.groupby("metric", sort=False)["measurable"].mean()
        return str(share.idxmax())

    def styled(self, name: str, caption: str, **arguments):
        """One of signal / planning / transfer_table / verdict_matrix as a captioned table for the book."""
        table = getattr(self, name)(**arguments)
        styler = table.style.format(precision=2, na_rep="-").set_caption(caption)
        return styler if name == "verdict_matrix" else styler.hide(axis="index")

    def chart(self, metric: str) -> alt.Chart | None:
        """The four estimates per benchmark of one metric, one panel per scale; faint where below noise."""
        rows = self.audit[self.audit["metric"] == metric]
        long = rows.melt(id_vars=["scale", "category", "benchmark", "measurable"], value_vars=list(ESTIMATES),
                         var_name="estimate", value_name="r").dropna(subset=["r"])
        if long.empty:
            return None
        long["estimate"] = long["estimate"].map(ESTIMATES)
        long["signal"] = np.where(long["measurable"], "above noise", "below noise")
        long["r"] = long["r"].clip(-1.5, 1.5)  # corrected values outside [-1, 1] stay visible, flagged in tables
        order = list(pd.unique(rows["benchmark"]))
        return alt.Chart(long.drop(columns="measurable")).mark_point(filled=True, size=45).encode(
            x=alt.X("benchmark:N", sort=order, title=None, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("r:Q", title=f"PT -> SFT r, {NAMES.get(metric, metric)}", scale=alt.Scale(domain=[-1.5, 1.5])),
            color=alt.Color("estimate:N", sort=list(ESTIMATES.values()), legend=alt.Legend(orient="bottom",
                                                                                           columns=1)),
            opacity=alt.Opacity("signal:N", scale=alt.Scale(domain=["above noise", "below noise"],
                                                            range=[1.0, 0.25])),
            tooltip=["scale", "benchmark", "estimate", alt.Tooltip("r:Q", format=".2f"), "signal"],
        ).properties(width=520, height=170).facet(row=alt.Row("scale:N", sort=self.scales, title=None))

    def verdict_matrix(self, metrics: list[str]) -> pd.DataFrame:
        """Benchmarks x (scale, metric): the verdict in short ("persist", "reverse", "no evidence", "below noise")."""
        short = {PERSIST: "persist", REVERSE: "reverse", NO_EVIDENCE: "no evidence", NOT_MEASURABLE: "below noise",
                 MODELS_PERSIST: "models persist", MODELS_REVERSE: "models reverse"}
        rows = self.audit[self.audit["metric"].isin(metrics)].assign(
            verdict=lambda t: t["verdict"].map(short), metric=lambda t: t["metric"].map(lambda m: NAMES.get(m, m)))
        wide = rows.pivot_table(index=["category", "benchmark"], columns=["scale", "metric"], values="verdict",
                                aggfunc="first", sort=False)
        columns = [(s, NAMES.get(m, m)) for s in self.scales for m in metrics if (s, NAMES.get(m, m)) in wide]
        return wide[columns]

    def at_every_scale(self, metric: str) -> list[str]:
        """Benchmarks whose signal of `metric` is measurable at every scale (where a scale comparison means something)."""
        names = [set(self.measurable_names(scale, metric)) for scale in self.scales]
        order = list(pd.unique(self.audit["benchmark"]))
        return [b for b in order if all(b in n for n in names)]

    def calibration_ready(self, scale: str) -> list[str]:
        """Benchmarks of `scale` where accuracy and confidence both clear their noise floors."""
        both = set(self.measurable_names(scale, "accuracy")) & set(self.measurable_names(scale, "confidence"))
        return [b for b in pd.unique(self.audit["benchmark"]) if b in both]

    # --- prose --------------------------------------------------------------------------------------------

    def measurable_names(self, scale: str, metric: str) -> list[str]:
        rows = self.audit[(self.audit["scale"] == scale) & (self.audit["metric"] == metric)]
        return list(rows.loc[rows["measurable"], "benchmark"])

    def verdict_names(self, scale: str, metric: str, verdict: str) -> list[str]:
        rows = self.audit[(self.audit["scale"] == scale) & (self.audit["metric"] == metric)]
        return list(rows.loc[rows["verdict"] == verdict, "benchmark"])

    def line(self, metric: str) -> str:
        """'accuracy: measurable on 0 of 20 benchmarks at mini-s (items and seeds), 1 of 20 at mini-l ...'."""
        parts = []
        for scale in self.scales:
            rows = self.audit[(self.audit["scale"] == scale) & (self.audit["metric"] == metric)]
            persist = self.verdict_names(scale, metric, PERSIST)
            models = self.verdict_names(scale, metric, MODELS_PERSIST)
            parts.append(f"{int(rows['measurable'].sum())} of {len(rows)} benchmarks at {scale}"
                         + (f" (persist: {', '.join(persist)})" if persist else "")
                         + (f" (model rankings persist, seed noise unmeasured: {len(models)})" if models else ""))
        return f"{NAMES.get(metric, metric)} above its noise floor on " + "; ".join(parts)

    def facts(self) -> dict[str, str]:
        """Prose values every RQ chapter's opening section uses (prefix noise_)."""
        floors = self.audit.groupby("scale", sort=False)["noise_floor"].first()
        seeds = self.audit.groupby("scale", sort=False)["n_seeds"].max()
        return {
            "noise_floors": "; ".join(f"at {s}, {floors[s].split(' (')[0]} "
                                      f"({report.counted(int(seeds[s]), 'seed')} per mixture)" for s in self.scales),
            "noise_lines": "\n".join(f"- {self.line(metric)}." for metric in self.metrics),
            "noise_best_metric": NAMES.get(self.best_metric, self.best_metric),
            "noise_accuracy_line": self.line("accuracy"),
            "noise_verdicts": self._verdict_text(),
            "noise_outside": self._outside_text(),
            "noise_every_scale": "\n".join(
                f"- {NAMES.get(m, m)}: {report.listing(self.at_every_scale(m))}" for m in self.metrics),
            "noise_calibration": "\n".join(
                f"- {scale}: {report.listing(self.calibration_ready(scale))}" for scale in self.scales),
        }

    def _verdict_text(self) -> str:
        lines = []
        for scale in self.scales:
            for metric in self.metrics:
                measurable = self.measurable_names(scale, metric)
                if not measurable:
                    continue
                seeded = self._seeded(scale)
                up, down = (PERSIST, REVERSE) if seeded else (MODELS_PERSIST, MODELS_REVERSE)
                persist, reverse = self.verdict_names(scale, metric, up), self.verdict_names(scale, metric, down)
                what = "rankings persist" if seeded else "model rankings persist (seed noise unmeasured)"
                lines.append(f"- {scale}, {NAMES.get(metric, metric)}: {what} on {report.listing(persist)}"
                             + (f", reverse on {', '.join(reverse)}" if reverse else "")
                             + f" ({len(measurable)} measurable)")
        return "\n".join(lines) if lines else (
            "- No benchmark has a mixture signal above its noise floor at any scale, for any metric: no "
            "ranking can be said to persist or to reverse at this scale.")

    def _seeded(self, scale: str) -> bool:
        return bool((self.audit.loc[self.audit["scale"] == scale, "n_seeds"] > 1).any())

    def _outside_text(self) -> str:
        flagged = self.audit[self.audit["corrected_outside"]]
        if flagged.empty:
            return "No corrected value falls outside [-1, 1]."
        return (f"{report.counted(len(flagged), 'corrected value')} of {len(self.audit)} fall outside [-1, 1] "
                "(flagged, not clipped): there the reliabilities are estimated too low for the observed r, "
                "which happens when the signal is near the noise floor.")


def _reliability(value: float) -> str:
    """A reliability for a table cell: '0.83', '< 0' (Hoyt's estimate has no lower bound) or '-' (undefined)."""
    return "-" if pd.isna(value) else "< 0" if value < 0 else f"{value:.2f}"


def _count(value: float) -> str:
    return "-" if pd.isna(value) else f"{int(value):,}"


def _r_text(r: float, low: float, high: float) -> str:
    if pd.isna(r):
        return "-"
    flag = " (outside [-1, 1])" if abs(r) > 1 else ""
    return f"{r:.2f} {report.interval_text(low, high)}{flag}"


def intro_noise_line(noise: NoiseFloor, rq: str) -> str:
    """The intro's noise clause for one RQ, from the audit (replaces the item-SE-only line)."""
    lines = {"RQ1": ["accuracy", "confidence"], "RQ2": ["accuracy"], "RQ3": ["accuracy"],
             "RQ4": ["accuracy", "confidence"]}[rq]
    best = noise.best_metric
    if best not in lines and rq != "RQ4":  # RQ4 is about accuracy and confidence only
        lines = [*lines, best]
    return "; ".join(noise.line(m) for m in lines)


def intro_verdict(noise: NoiseFloor, rq: str) -> str | None:
    """A noise-aware verdict for RQ1 and RQ2 (None: keep the chapter's own), from the audit's verdicts."""
    audit = noise.audit
    measurable = audit[audit["measurable"]]
    persist = audit[audit["verdict"] == PERSIST]
    if rq == "RQ1":
        if measurable.empty:
            return "not measurable at this scale: no benchmark's mixture signal clears its noise floor"
        models = audit[audit["verdict"] == MODELS_PERSIST]
        seeded = measurable[measurable["n_seeds"] > 1]
        seeded_scales = list(pd.unique(audit.loc[audit["n_seeds"] > 1, "scale"]))
        if len(seeded):
            text = (f"mixture rankings persist in {len(persist)} of {len(seeded)} (scale, benchmark, metric) "
                    "cells measurable against item and seed noise")
        elif seeded_scales:  # seeds were trained, and their spread swamps the mixtures' differences
            text = (f"not measurable at {', '.join(seeded_scales)}: with several seeds there, no benchmark's "
                    "mixture signal clears item and seed noise")
        else:
            text = "no scale has several seeds, so no mixture effect can be told from seed noise"
        if len(models):
            text += (f"; model rankings persist beyond item noise in {len(models)} cells with one seed "
                     "(seed noise unmeasured)")
        return text
    if rq == "RQ2":
        names = list(pd.unique(persist.loc[persist["metric"] == "accuracy", "benchmark"]))
        others = sorted(set(persist["benchmark"]) - set(names))
        if not names and not others:
            return "no benchmark is a robust predictor beyond item and seed noise at this scale"
        return ("robust predictors (measurable signal, persisting ranking): "
                + report.listing(names, "none on accuracy")
                + (f"; on continuous or confidence metrics also {', '.join(others)}" if others else ""))
    return None


def noise_aware(answers: pd.DataFrame, noise: NoiseFloor) -> pd.DataFrame:
    """The intro's answers (report.answers) with RQ1/RQ2 verdicts and every noise clause from the audit."""
    answers = answers.copy()
    for index, rq in answers["rq"].items():
        answers.loc[index, "verdict"] = intro_verdict(noise, rq) or answers.loc[index, "verdict"]
        answers.loc[index, "noise"] = intro_noise_line(noise, rq)
    return answers
