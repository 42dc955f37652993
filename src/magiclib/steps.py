"""The steps of a study and where each one's outputs live.

A step is one unit of work: the shared data build, or one (pretrain | sft | evaluate) run of a mixture,
scale and seed. Each step's folder is named by a hash of exactly the config it depends on, including the
hashes of the steps it reads, so an unchanged step is found finished and skipped, and a changed value
reruns exactly the steps downstream of it. A folder is finished once its `run.json` exists (written last).

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

import contextlib
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import io, precision
from .config import StudyConfig, config_hash, to_dict
from .errors import BadValue, MissingFile, NotReady

KINDS = ("pretrain", "sft", "evaluate")
STAGES = ("PT", "SFT")


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


# --- hashes and folders ------------------------------------------------------------------------------

_POOL_KEYS = ("source", "curated_pools", "docs_per_pool", "edu_keep_fraction", "quality_keep_fraction",
              "near_dup_threshold", "decontam_ngram")
_TOKENIZER_KEYS = ("tokenizer", "vocab_size", "tokenizer_train_docs")


def _benchmarks(cfg: StudyConfig) -> list[str]:
    from .benchmarks import STUDY_BENCHMARKS

    return list(cfg.eval.benchmarks or STUDY_BENCHMARKS)


def pools_hash(cfg: StudyConfig) -> str:
    data = to_dict(cfg.data)
    # Decontamination always covers the study's 20 benchmarks, whatever subset is scored.
    return config_hash({k: data[k] for k in _POOL_KEYS}, cfg.web_sources)


def tokenizer_hash(cfg: StudyConfig) -> str:
    data = to_dict(cfg.data)
    return config_hash(pools_hash(cfg), {k: data[k] for k in _TOKENIZER_KEYS})


def sft_data_hash(cfg: StudyConfig) -> str:
    return config_hash(tokenizer_hash(cfg), cfg.sft_data)


def eval_items_hash(cfg: StudyConfig) -> str:
    return config_hash(cfg.eval.items_per_benchmark, _benchmarks(cfg))


def mixture_hash(cfg: StudyConfig, mixture: str, seed: int) -> str:
    web, props = cfg.mixture(mixture)
    return config_hash(tokenizer_hash(cfg), web, props, cfg.data.curated_pools, cfg.data.tokens_per_mixture, seed)


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


# --- running -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _fresh_folder(folder: Path):
    """Build a step's folder under a temporary name and rename it into place when the step succeeds.

    Training steps resume from their own partial folder (`<folder>.partial`), so a killed run continues
    from its last checkpoint instead of starting over.
    """
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    if _is_rank_zero():  # a killed run's half-written temporaries (a checkpoint can take gigabytes)
        io.remove_temporaries(partial)
    yield partial
    if _is_rank_zero():  # under torchrun, rank 0 alone owns the folder
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)


def set_threads() -> None:
    """Use $MAGIC_THREADS torch threads (set by the grid: cores / workers), else all cores."""
    import torch

    threads = int(os.environ.get("MAGIC_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(threads)


def run_data(cfg: StudyConfig, results: Path) -> list[dict]:
    """The shared data steps (pools, tokenizer, SFT mix, every mixture's shards); skips finished ones."""
    from . import data, sft_data

    summaries = []
    jobs = [("pools", pools_dir(cfg, results), pools_hash(cfg),
             lambda out: data.prepare_pools(cfg, out)),
            ("tokenizer", tokenizer_dir(cfg, results), tokenizer_hash(cfg),
             lambda out: data.build_tokenizer(cfg, pools_dir(cfg, results), out)),
            ("sft_data", sft_data_dir(cfg, results), sft_data_hash(cfg),
             lambda out: sft_data.build_sft_dataset(cfg, tokenizer_dir(cfg, results), out, cfg.seeds[0])),
            ("eval_items", eval_items_dir(cfg, results), eval_items_hash(cfg),
             lambda out: _write_eval_items(cfg, out))]
    for seed in cfg.seeds:
        for mixture in cfg.mixture_names:
            jobs.append((f"mixture {mixture} s{seed}", mixture_dir(cfg, results, mixture, seed),
                         mixture_hash(cfg, mixture, seed),
                         lambda out, m=mixture, s=seed: data.build_mixture(
                             cfg, m, pools_dir(cfg, results), tokenizer_dir(cfg, results), out, s)))
    for name, folder, digest, build in jobs:
        if io.is_finished(folder, digest):
            summary = io.read_json(folder / io.RUN_RECORD).get("summary")
        else:
            started = time.time()
            print(f"[data] {name} -> {folder}", flush=True)
            with _fresh_folder(folder) as out:
                summary = build(out)
                io.finish_run(out, kind=f"data:{name.split()[0]}", config=to_dict(cfg.data),
                              config_hash=digest, seed=None, started=started, summary=summary)
        summaries.append({"step": name, "summary": summary})
    return summaries


def data_table(summaries: list[dict]) -> pd.DataFrame:
    from . import data

    return data.data_table(summaries)


def run_step(cfg: StudyConfig, results: Path, step: Step) -> Path:
    """Run one step (its inputs must exist) and return its finished folder; a finished step is skipped."""
    folder = step_dir(cfg, results, step)
    digest = step_hash(cfg, step)
    if io.is_finished(folder, digest):
        return folder
    _check_inputs(cfg, results, step)
    needed = step.needs()
    set_threads()
    scale = cfg.scale(step.scale)
    started = time.time()
    with _fresh_folder(folder) as out:
        if step.kind != "evaluate" and (out / "checkpoint").exists():
            check_checkpoint(out / "checkpoint", f"delete {out / 'checkpoint'} to restart this step from scratch")
        if step.kind == "pretrain":
            from . import train

            summary = train.pretrain(scale, mixture_dir(cfg, results, step.mixture, step.seed) / "tokens.npy",
                                     tokenizer_dir(cfg, results), out, step.seed)
        elif step.kind == "sft":
            from . import train

            summary = train.sft(scale, step_dir(cfg, results, needed) / "model", sft_data_dir(cfg, results),
                                out, step.seed)
        else:
            summary = _evaluate(cfg, results, step, out)
        if _is_rank_zero():
            io.finish_run(out, kind=step.kind, config=to_dict(cfg), config_hash=digest, seed=step.seed,
                          started=started, step=to_dict(step), summary=summary)
    return folder


def _check_inputs(cfg: StudyConfig, results: Path, step: Step) -> None:
    """Refuse to start a step whose data or upstream checkpoint is missing or damaged, saying what to run."""
    if step.kind == "pretrain":
        data = [(f"mixture {step.mixture} (seed {step.seed})", mixture_dir(cfg, results, step.mixture, step.seed),
                 mixture_hash(cfg, step.mixture, step.seed))]
    elif step.kind == "sft":
        data = [("SFT data", sft_data_dir(cfg, results), sft_data_hash(cfg))]
    else:
        data = [("evaluation items", eval_items_dir(cfg, results), eval_items_hash(cfg))]
    for name, folder, digest in data:
        if not io.is_finished(folder, digest):
            raise NotReady(f"{step.kind} {step.label} needs the {name} in {folder}, which is not built; run "
                           "`magic data` with this config and overrides (its mixtures and seeds must include "
                           "this step's) or `magic study`")
    needed = step.needs()
    if needed is None:
        return
    if not is_done(cfg, results, needed):
        raise NotReady(f"{step.kind} {step.label} needs {needed.kind} {needed.label} first; "
                       "run `magic study` (it orders the steps) or that step")
    check_checkpoint(step_dir(cfg, results, needed) / "model",
                     f"delete {step_dir(cfg, results, needed)} and rerun `magic study` to redo that step")


def check_checkpoint(folder: Path, fix: str) -> None:
    """Refuse a missing, truncated or corrupt checkpoint (model safetensors, trainer state) up front, naming
    the file and the `fix`, rather than failing somewhere inside transformers or torch."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    weights = sorted(folder.rglob("*.safetensors"))
    if not weights:
        raise MissingFile(f"no model weights (*.safetensors) in {folder}; {fix}")
    for path in weights:
        try:
            with safe_open(path, "pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            raise BadValue(f"{path} is truncated or corrupt ({err}); {fix}") from None
    for path in folder.rglob("*.pt"):  # torch.save writes a zip archive: a cut one has no central directory
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as err:
            raise BadValue(f"{path} is truncated or corrupt ({err}); {fix}") from None


def _write_eval_items(cfg: StudyConfig, out: Path) -> dict:
    """Draw the evaluation items once per study (fixed seed 0), so every checkpoint, seed and stage is
    scored on the very same questions and no run reloads the benchmark files."""
    from .benchmarks import load_items

    items = [item for name in _benchmarks(cfg) for item in load_items(name, cfg.eval.items_per_benchmark, seed=0)]
    io.write_text(out / "items.jsonl", "".join(json.dumps(dataclasses.asdict(i)) + "\n" for i in items))
    return {"items": len(items), "benchmarks": len(_benchmarks(cfg))}


def eval_items(cfg: StudyConfig, results: Path) -> list:
    from .benchmarks import Item

    lines = (eval_items_dir(cfg, results) / "items.jsonl").read_text(encoding="utf-8").splitlines()
    return [Item(**json.loads(line)) for line in lines]


def _evaluate(cfg: StudyConfig, results: Path, step: Step, out: Path) -> dict:
    import torch

    from . import metrics, precision, scorer

    checkpoint = step_dir(cfg, results, step.needs()) / "model"
    computed_in = precision.eval_precision(cfg, cuda=torch.cuda.is_available())
    items = scorer.score_checkpoint(checkpoint, cfg.eval, items=eval_items(cfg, results), precision=computed_in)
    io.write_parquet(out / "items.parquet", items)
    scores = metrics.score_table(items)
    io.write_parquet(out / "scores.parquet", scores)
    return {"items": int(items["item"].nunique()), "benchmarks": int(scores.shape[0]),
            "mean_accuracy": float(scores["accuracy"].mean()), "precision": computed_in,
            "cpu": precision.cpu_model()}


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
