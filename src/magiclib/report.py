"""What the book says about a study, as text and tables: the formatting every chapter shares.

The chapters in `book/` hold prose, parameters and charts; every number in their prose is computed here
(or in `magiclib.chapters`, one module per chapter) and enters the prose through myst-nb's glue:
`glue_all(facts)` stores each value in the notebook, and a markdown cell writes ``{glue:md}`name` ``.
This module holds what several chapters share: how a p-value or an interval is written, the paper's
value beside ours, the critical |r| for n mixtures, the study's config, mixtures, scales and benchmarks
as tables, and the one-line answers the introduction opens with.

p-values are written two ways, each with one rule for a missing p: `p_text` for a table cell ("-") and
`p_is` for a sentence ("p not defined").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import analysis, plots, results
from .config import StudyConfig, load_config

ALPHA = 0.05
N_BOOT = 2000  # bootstrap resamples per interval in the book: enough for 95% intervals, quick to build
METRIC_NAMES = {"accuracy": "accuracy", "confidence": "confidence", "gold_prob": "gold probability"}


# --- study ------------------------------------------------------------------------------------------------


def study_config(results_dir: str | Path, preset: str) -> StudyConfig:
    """The config a results folder was computed with (its config.yaml), else the named preset."""
    written = Path(results_dir) / "config.yaml"
    return load_config(str(written) if written.exists() else preset)


# --- numbers as text ----------------------------------------------------------------------------------------


def human(number: float) -> str:
    """A count in short form, to three significant digits: 37K, 1.57M, 241M, 1.15B, 12T."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= limit:
            return f"{number / limit:.3g}{suffix}"
    return f"{number:.3g}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 seed', '2 scales': a number and its noun, for sentences computed from the results."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def p_text(p: float) -> str:
    """A p-value for a table cell: '0.042', '<0.001', or '-' where there is no p."""
    return "-" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """A p-value for a sentence: 'p = 0.042', 'p < 0.001', or 'p not defined' where there is no p."""
    return "p not defined" if pd.isna(p) else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def interval_text(low: float, high: float) -> str:
    """'[-0.12, 0.80]', or '-' where there is no interval."""
    return "-" if pd.isna(low) else f"[{low:.2f}, {high:.2f}]"


def interval(rows: pd.DataFrame, low: str = "ci_low", high: str = "ci_high") -> pd.Series:
    """The interval of each row as text (see `interval_text`), aligned with the rows' index."""
    return pd.Series([interval_text(lo, hi) for lo, hi in zip(rows[low], rows[high], strict=True)],
                     index=rows.index, dtype=object)


def critical_r(n: int, alpha: float = ALPHA) -> float:
    """The smallest |r| that reaches two-sided p < alpha over n points, by the t-test of Pearson's r."""
    t = stats.t.ppf(1 - alpha / 2, n - 2)
    return float(t / np.sqrt(n - 2 + t**2))


def seeds_text(cfg: StudyConfig) -> str:
    """'1 seed', or per scale where scales differ: '3 seeds at mini-s and 1 seed at mini-l'."""
    counts = {scale: len(cfg.scale_seeds(scale)) for scale in cfg.scales}
    if len(set(counts.values())) == 1:
        return counted(next(iter(counts.values())), "seed")
    return " and ".join(f"{counted(n, 'seed')} at {scale}" for scale, n in counts.items())


def listing(names: list[str], none: str = "none") -> str:
    """'a, b, c', or `none` for an empty list."""
    return ", ".join(names) if names else none


# --- glue ---------------------------------------------------------------------------------------------------


def glue_all(facts: Mapping[str, object]) -> None:
    """Store every fact in the notebook for ``{glue:md}`name` `` in markdown cells (nothing is displayed)."""
    from IPython.display import Markdown
    from myst_nb import glue

    for name, value in facts.items():
        glue(name, Markdown(str(value)), display=False)


# --- the paper beside ours ----------------------------------------------------------------------------------


class PaperValues:
    """The paper's numbers (analysis.paper_numbers) looked up at the paper scale of the same rank as ours."""

    def __init__(self, paper: pd.DataFrame, scales: list[str]):
        self.paper, self.scales = paper, scales

    def value(self, quantity: str, scale: str, with_scale: bool = True, **fields: str) -> str:
        """The paper's number as "0.49 [S] (240M)" ("0.49 [S]" without the scale), or "" if it has none."""
        rows = self.paper[(self.paper["quantity"] == quantity)
                          & (self.paper["scale_rank"] == self.scales.index(scale))]
        for field, value in fields.items():
            rows = rows[rows[field] == value]
        if rows.empty:
            return ""
        text = f"{rows['value'].iloc[0]:.2f} [{rows['mark'].iloc[0]}]"
        return text + (f" ({rows['scale'].iloc[0]})" if with_scale else "")

    def scale_of(self, scale: str) -> str:
        """The paper's scale of the same rank as ours ("240M" for our smallest), or "" past its last."""
        rank = self.scales.index(scale)
        names = list(pd.unique(self.paper["scale"]))
        return names[rank] if rank < len(names) else ""

    def span(self, quantity: str, scale_from: str, scale_to: str, joiner: str, **fields: str) -> str:
        """The paper's values at two scales joined ("0.49 [S] (240M) to ..."), or "" if it has neither."""
        text = joiner.join(self.value(quantity, s, **fields) or "-" for s in (scale_from, scale_to))
        return "" if text == joiner.join("--") else text


class ScoresChapter:
    """What a results chapter starts from: the scores table, its scales from smallest to largest, the number
    of mixtures, and the paper's values at the scales of the same rank."""

    def __init__(self, results_dir: str):
        self.scores = results.table(results_dir, "scores")
        self.scales = analysis.tables.scale_order(self.scores)
        self.n_mixtures = self.scores["mixture"].nunique()
        self.paper = analysis.paper_numbers()
        self.quote = PaperValues(self.paper, self.scales)


# --- tables several chapters show ---------------------------------------------------------------------------


def mixtures_table(cfg: StudyConfig) -> pd.DataFrame:
    """One row per mixture: web source and filter, code pools, curated pools and the three token shares."""
    rows = []
    for name in cfg.mixture_names:
        web, props = cfg.mixture(name)
        rows.append({"mixture": name, "web source": web.label, "web filter": web.filter,
                     "code pools": ", ".join(web.code_pools),
                     "curated pools": ", ".join(cfg.data.curated_pools),
                     "web": props.web, "code": props.code, "curated": props.curated})
    return pd.DataFrame(rows)


def scales_table(cfg: StudyConfig) -> pd.DataFrame:
    """One row per scale: shape, parameters, pretraining steps, tokens and FLOPs per run, SFT settings."""
    from .model import count_parameters, flops_per_token

    rows = []
    for name, scale in cfg.scales.items():
        mc, pt = scale.model, scale.pretrain
        params = count_parameters(mc)
        # max_steps None means one pass over the mixture's tokens (see TrainConfig).
        tokens = pt.max_steps * pt.batch_size * pt.seq_len if pt.max_steps else cfg.data.tokens_per_mixture
        rows.append({"scale": name, "d_model": mc.d_model, "layers": mc.n_layers, "heads": mc.n_heads,
                     "head dim": mc.head_dim, "context": mc.context, "vocabulary": mc.vocab_size,
                     "parameters": params["total"], "non-embedding": params["non_embedding"],
                     "PT steps": pt.max_steps, "PT tokens": tokens,
                     "tokens per parameter": tokens / params["total"],
                     "PT FLOPs": flops_per_token(mc, pt.seq_len) * tokens,
                     "SFT epochs": scale.sft.epochs if scale.sft.max_steps is None else None,
                     "SFT steps": scale.sft.max_steps, "GPUs per run": scale.gpus})
    return pd.DataFrame(rows)


def benchmarks_table(items: pd.DataFrame) -> pd.DataFrame:
    """One row per scored benchmark, by category: items in its split, items scored, answer choices.

    `items` is the study's items table (results.table(..., "items"): one row per item and choice of every
    run); the benchmarks and the items scored come from it, so this never re-applies the config's
    `items_per_benchmark`. The split's size and its range of answer choices come from the benchmark registry.
    """
    from .benchmarks import BENCHMARKS, load_items

    keys = ["mixture", "scale", "stage", "seed"]  # one run: every run scores the same items
    first_run = items[(items[keys] == items[keys].iloc[0]).all(axis=1)]
    scored = first_run.groupby("benchmark", sort=False)["item"].nunique()
    rows = []
    for name, n_scored in scored.items():
        split = load_items(name)
        choices = sorted({len(item.continuations) for item in split})
        rows.append({"category": BENCHMARKS[name].category, "benchmark": name, "items": len(split),
                     "items scored": n_scored,
                     "choices": str(choices[0]) if len(choices) == 1 else f"{choices[0]}-{choices[-1]}"})
    frame = pd.DataFrame(rows)
    order = plots.benchmark_order(frame)
    return frame.set_index("benchmark").loc[order].reset_index()[list(frame.columns)]


# --- the answers the introduction opens with ----------------------------------------------------------------


def answers(scores: pd.DataFrame, n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per research question: rq, chapter, verdict, evidence and noise (is the signal above it?).

    Each answer is one function of ANSWERS (scores, n_boot -> dict), so a finer analysis of noise can
    replace one answer without touching the others. `answers_markdown` writes the rows as the intro's list.
    """
    return pd.DataFrame([answer(scores, n_boot) for answer in ANSWERS])


def answers_markdown(table: pd.DataFrame) -> str:
    """The answers as a markdown list: '- **[RQ1](chapter.ipynb)** verdict: evidence; noise.'"""
    return "\n".join(f"- **[{row.rq}]({row.chapter}.ipynb)** {row.verdict}: {row.evidence}; {row.noise}."
                     for row in table.itertuples())


def _noise_line(scores: pd.DataFrame, metric: str) -> str:
    """How many (scale, stage, benchmark) cells separate the mixtures by more than the item noise."""
    from .analysis import signal_to_noise

    snr = signal_to_noise(scores, metric)["snr_items"]
    above = int((snr > 1).sum())
    return (f"the mixtures differ by more than the item noise in {above} of {snr.notna().sum()} "
            f"benchmark cells ({METRIC_NAMES[metric]}, median ratio {snr.median():.2f})")


def _rq1_answer(scores: pd.DataFrame, n_boot: int) -> dict:
    from .analysis import adjust_pvalues, category_transfer
    from .analysis.tables import scale_order

    means = adjust_pvalues(category_transfer(scores, metrics=("accuracy", "confidence"), n_boot=n_boot),
                           by="metric")
    overall = means[means["category"] == "all"]
    clear = overall[(overall["p_holm"] < ALPHA) & (overall["mean_r"] > 0)]
    verdict = ("rankings persist beyond noise" if len(clear) == len(overall) else
               "rankings persist beyond noise only in part" if len(clear) else
               "no persistence distinguishable from noise")
    scales = scale_order(scores)
    evidence = "; ".join(
        f"{METRIC_NAMES[metric]} naive mean r " + ", ".join(
            f"{row.mean_r:.2f} at {row.scale}" for row in
            rows.set_index("scale").reindex(scales).reset_index().itertuples())
        for metric, rows in overall.groupby("metric", sort=False))
    return {"rq": "RQ1", "chapter": "rq1_persistence", "verdict": verdict,
            "evidence": f"{evidence} ({len(clear)} of {len(overall)} clear Holm-adjusted p < {ALPHA})",
            "noise": _noise_line(scores, "accuracy")}


def _rq2_answer(scores: pd.DataFrame, n_boot: int) -> dict:
    from .analysis import adjust_pvalues, predictor_ranking

    ranking = adjust_pvalues(predictor_ranking(scores, metric="accuracy", n_boot=n_boot), methods=("holm",))
    defined = ranking.dropna(subset=["r"])
    robust = defined[(defined["p_holm"] < ALPHA) & (defined["r"] > 0)]
    verdict = "some benchmarks are robust predictors" if len(robust) else "no benchmark predicts beyond noise"
    names = sorted(set(robust["benchmark"]))
    return {"rq": "RQ2", "chapter": "rq2_predictors", "verdict": verdict,
            "evidence": f"{len(robust)} of {len(defined)} (benchmark, scale) accuracy correlations are positive "
                        f"with Holm-adjusted p < {ALPHA}" + (f" ({', '.join(names)})" if names else ""),
            "noise": _noise_line(scores, "accuracy")}


def _rq3_answer(scores: pd.DataFrame, n_boot: int) -> dict:
    from .analysis import category_scale_differences
    from .analysis.tables import scale_order

    base = {"rq": "RQ3", "chapter": "rq3_scale", "noise": _noise_line(scores, "confidence")}
    if len(scale_order(scores)) < 2:
        return {**base, "verdict": "not answered", "evidence": "this study has one scale"}
    overall = category_scale_differences(scores, n_boot=n_boot)
    overall = overall[overall["category"] == "all"]
    # decided by the test that holds its level (mean Steiger Z, column p), not by the bootstrap interval
    beyond = overall[overall["p"] < ALPHA]
    verdict = "transfer changes with scale" if len(beyond) else "no change with scale beyond noise"
    evidence = "; ".join(f"{METRIC_NAMES[row.metric]} mean r {row.r_from:.2f} at {row.scale_from} to "
                         f"{row.r_to:.2f} at {row.scale_to} ({row.difference:+.2f}"
                         + (f" {interval_text(row.ci_low, row.ci_high)}" if row.ci_reliable else "")
                         + f", {p_is(row.p)})" for row in overall.itertuples())
    return {**base, "verdict": verdict, "evidence": evidence}


def _rq4_answer(scores: pd.DataFrame, n_boot: int) -> dict:
    from .analysis import adjust_pvalues, alignment

    align = adjust_pvalues(alignment(scores, n_boot=n_boot), by="axis")
    across = align[align["axis"] == "mixtures"].dropna(subset=["r"])
    clear = across[across["p_holm"] < ALPHA]
    verdict = "confidence tracks accuracy beyond noise" if len(clear) else \
        "no alignment of confidence with accuracy beyond noise"
    return {"rq": "RQ4", "chapter": "rq4_calibration", "verdict": verdict,
            "evidence": f"{len(clear)} of {len(across)} (category, scale, stage) alignments across mixtures clear "
                        f"Holm-adjusted p < {ALPHA}",
            "noise": _noise_line(scores, "confidence")}


ANSWERS = (_rq1_answer, _rq2_answer, _rq3_answer, _rq4_answer)
