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

from . import plots
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
