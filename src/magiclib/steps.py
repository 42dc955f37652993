"""The plan of a study: its steps, the hash that identifies each one, and where each one's outputs live.

A step is one unit of work: a shared data build, or one (pretrain | sft | evaluate) run of a mixture,
scale and seed. Each step's folder is named by a hash of exactly the config it depends on, including the
hashes of the steps it reads, so an unchanged step is found finished and skipped, and a changed value
reruns exactly the steps downstream of it. A folder is finished once its `run.json` exists (written last).
This module only names and plans; `runner` runs a step, and the executors (`grid`, `slurm`) schedule them.

    <results>/data/pools-<h>/            filtered, decontaminated pools + filter reports   (shared)
    <results>/data/tokenizer-<h>/        the study's tokenizer                            (shared)
    <results>/data/sft-<h>/              the tokenized SFT mix                            (shared)
    <results>/data/eval-<h>/             the evaluation items every checkpoint is scored on (shared)
    <results>/data/mixtures/<mix>-s<seed>-<h>/   token shards of one mixture
    <results>/runs/pretrain/<mix>_<scale>_s<seed>-<h>/   PT checkpoint, loss curve, run notebook
    <results>/runs/sft/<mix>_<scale>_s<seed>-<h>/        SFT checkpoint, loss curve, run notebook
    <results>/runs/evaluate/<mix>_<scale>_<stage>_s<seed>-<h>/   per-item log-likelihoods, scores
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import io, precision
from .benchmarks import scored_benchmarks
from .config import StudyConfig, config_hash, to_dict
from .errors import BadValue

KINDS = ("pretrain", "sft", "evaluate")
STAGES = ("PT", "SFT")
EVAL_ITEMS_FILE = "items.jsonl"  # in the eval-items folder: the items every checkpoint is scored on


@dataclass(frozen=True)
class Step:
    """One run of the grid. `stage` is set for evaluate steps only (which checkpoint is scored)."""

    kind: str
    mixture: str
    scale: str
    seed: int
    stage: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BadValue(f"unknown step kind {self.kind!r}; allowed: {KINDS}")
        if (self.kind == "evaluate") != (self.stage is not None) or self.stage not in (None, *STAGES):
            raise BadValue(f"evaluate steps need stage PT or SFT, others none; got {self.kind} {self.stage}")

    @property
    def label(self) -> str:
        stage = f"_{self.stage}" if self.stage else ""
        return f"{self.mixture}_{self.scale}{stage}_s{self.seed}"

    def needs(self) -> Step | None:
        """The step whose outputs this one reads (data steps aside)."""
        if self.kind == "sft":
            return Step("pretrain", self.mixture, self.scale, self.seed)
        if self.kind == "evaluate":
            return Step("pretrain" if self.stage == "PT" else "sft", self.mixture, self.scale, self.seed)
        return None


# --- the plan ----------------------------------------------------------------------------------------


def plan(cfg: StudyConfig) -> list[Step]:
    """Every step of the study, in an order that respects dependencies (larger scales first per kind)."""
    scales = sorted(cfg.scales, key=lambda s: -scale_params(cfg, s))
    grid = [(m, s, seed) for seed in cfg.all_seeds for s in scales if seed in cfg.scale_seeds(s)
            for m in cfg.mixture_names]
    out = [Step("pretrain", m, s, seed) for m, s, seed in grid]
    out += [Step("sft", m, s, seed) for m, s, seed in grid]
    out += [Step("evaluate", m, s, seed, stage) for stage in STAGES for m, s, seed in grid]
    return out


def scale_params(cfg: StudyConfig, scale: str) -> int:
    """The parameter count of a scale's model (it orders the scales)."""
    from .model import count_parameters  # imported late: planning needs no torch until a scale is sized

    return int(count_parameters(cfg.scales[scale].model)["total"])


def plan_table(cfg: StudyConfig, results: Path) -> pd.DataFrame:
    """One row per planned step: kind, mixture, scale, seed, stage, and whether it is finished."""
    rows = [{"kind": st.kind, "mixture": st.mixture, "scale": st.scale, "seed": st.seed, "stage": st.stage,
             "done": is_done(cfg, results, st)} for st in plan(cfg)]
    return pd.DataFrame(rows)


def plan_summary(cfg: StudyConfig, results: Path) -> str:
    """What `magic study` prints before it runs: the grid's size and the steps finished per kind."""
    table = plan_table(cfg, results)
    summary = table.groupby("kind", sort=False)["done"].agg(["size", "sum"]).rename(
        columns={"size": "steps", "sum": "finished"})
    seeds = {len(cfg.scale_seeds(s)) for s in cfg.scales}
    per_scale = (f"{seeds.pop()} seed(s)" if len(seeds) == 1 else
                 "seeds " + ", ".join(f"{s} {len(cfg.scale_seeds(s))}" for s in cfg.scales))
    return (f"study {cfg.name!r}: {len(cfg.mixture_names)} mixtures x {len(cfg.scales)} scales x "
            f"{per_scale}; results in {results}\n{summary.to_string()}")


# --- hashes and folders ------------------------------------------------------------------------------
# Every DataConfig field is named in one of these lists, so it is part of the hash of the data it shapes
# (tests/test_steps.py checks that none is left out). The other configs are hashed whole: `cfg.sft_data`,
# a scale's `model`, `pretrain` and `sft`, and `cfg.eval` each key the steps they shape.

POOL_KEYS = ("source", "curated_pools", "docs_per_pool", "edu_keep_fraction", "quality_keep_fraction",
             "near_dup_threshold", "decontam_ngram")
TOKENIZER_KEYS = ("tokenizer", "vocab_size", "tokenizer_train_docs")
MIXTURE_KEYS = ("curated_pools", "tokens_per_mixture")  # curated_pools also reaches mixtures through the pools
# A mixture's tokens went from one tokens.npy to shards tokens/NNNNN.npy (the same stream): a folder in the
# old layout is not reused by code that reads the new one.
MIXTURE_FORMAT = "npy-shards"
# Pools went from one <name>.parquet, filtered in memory, to a folder <name>/ written by the streaming blocks
# (other samples of the same config): a pools folder of the old code is not reused.
POOLS_FORMAT = "parquet-folders"


def pools_hash(cfg: StudyConfig) -> str:
    data = to_dict(cfg.data)
    # Decontamination always covers the study's 20 benchmarks, whatever subset is scored.
    return config_hash({k: data[k] for k in POOL_KEYS}, cfg.web_sources, POOLS_FORMAT)


def tokenizer_hash(cfg: StudyConfig) -> str:
    data = to_dict(cfg.data)
    return config_hash(pools_hash(cfg), {k: data[k] for k in TOKENIZER_KEYS})


def sft_data_hash(cfg: StudyConfig) -> str:
    return config_hash(tokenizer_hash(cfg), cfg.sft_data)


def eval_items_hash(cfg: StudyConfig) -> str:
    return config_hash(cfg.eval.items_per_benchmark, scored_benchmarks(cfg.eval))


def mixture_hash(cfg: StudyConfig, mixture: str, seed: int) -> str:
    web, props = cfg.mixture(mixture)
    data = to_dict(cfg.data)
    return config_hash(tokenizer_hash(cfg), web, props, *(data[k] for k in MIXTURE_KEYS), seed, MIXTURE_FORMAT)


def step_hash(cfg: StudyConfig, step: Step) -> str:
    # Each hashes the precision it computes in (precision.hashed: fp32 hashes as before precisions existed).
    scale = cfg.scale(step.scale)
    if step.kind == "pretrain":
        pretrain = precision.hashed(scale.pretrain, precision.train_precision(scale.pretrain, scale.model))
        return config_hash(mixture_hash(cfg, step.mixture, step.seed), scale.model, pretrain, step.seed)
    if step.kind == "sft":
        sft = precision.hashed(scale.sft, precision.train_precision(scale.sft, scale.model))
        return config_hash(step_hash(cfg, step.needs()), sft_data_hash(cfg), sft)
    scoring = precision.hashed(cfg.eval, precision.eval_precision(cfg))
    return config_hash(step_hash(cfg, step.needs()), scoring, eval_items_hash(cfg))


def pools_dir(cfg: StudyConfig, results: Path) -> Path:
    return results / "data" / f"pools-{pools_hash(cfg)}"


def tokenizer_dir(cfg: StudyConfig, results: Path) -> Path:
    return results / "data" / f"tokenizer-{tokenizer_hash(cfg)}"


def sft_data_dir(cfg: StudyConfig, results: Path) -> Path:
    return results / "data" / f"sft-{sft_data_hash(cfg)}"


def eval_items_dir(cfg: StudyConfig, results: Path) -> Path:
    return results / "data" / f"eval-{eval_items_hash(cfg)}"


def mixture_dir(cfg: StudyConfig, results: Path, mixture: str, seed: int) -> Path:
    return results / "data" / "mixtures" / f"{mixture}-s{seed}-{mixture_hash(cfg, mixture, seed)}"


def step_dir(cfg: StudyConfig, results: Path, step: Step) -> Path:
    return results / "runs" / step.kind / f"{step.label}-{step_hash(cfg, step)}"


def is_done(cfg: StudyConfig, results: Path, step: Step) -> bool:
    return io.is_finished(step_dir(cfg, results, step), step_hash(cfg, step))
