"""Running steps in this process: the shared data steps, and one pretrain, sft or evaluate step.

Every executor ends here: a local worker's papermill notebook and an array task on Slurm call `run_step`,
and the inline executor calls it directly. A step's outputs are built in `<folder>.partial` and renamed
into place when it succeeds, so a folder that exists is complete; `steps` names the folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import pandas as pd

from . import io
from .config import StudyConfig, to_dict
from .errors import NotReady
from .steps import (
    EVAL_ITEMS_FILE,
    Step,
    eval_items_dir,
    eval_items_hash,
    is_done,
    mixture_dir,
    mixture_hash,
    pools_dir,
    pools_hash,
    sft_data_dir,
    sft_data_hash,
    step_dir,
    step_hash,
    tokenizer_dir,
    tokenizer_hash,
)


@contextlib.contextmanager
def fresh_folder(folder: Path):
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
    for seed in cfg.all_seeds:
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
            with fresh_folder(folder) as out:
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
    from .model import check_checkpoint

    folder = step_dir(cfg, results, step)
    digest = step_hash(cfg, step)
    if io.is_finished(folder, digest):
        return folder
    _check_inputs(cfg, results, step)
    needed = step.needs()
    set_threads()
    scale = cfg.scale(step.scale)
    started = time.time()
    with fresh_folder(folder) as out:
        if step.kind != "evaluate" and (out / "checkpoint").exists():
            check_checkpoint(out / "checkpoint", f"delete {out / 'checkpoint'} to restart this step from scratch")
        if step.kind == "pretrain":
            from . import train

            summary = train.pretrain(scale, mixture_dir(cfg, results, step.mixture, step.seed) / "tokens",
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
    from .model import check_checkpoint

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


def _write_eval_items(cfg: StudyConfig, out: Path) -> dict:
    """Draw the evaluation items once per study, so no run reloads the benchmark files."""
    from .benchmarks import scored_benchmarks, scored_items, write_items

    items = scored_items(cfg.eval)
    write_items(out / EVAL_ITEMS_FILE, items)
    return {"items": len(items), "benchmarks": len(scored_benchmarks(cfg.eval))}


def _evaluate(cfg: StudyConfig, results: Path, step: Step, out: Path) -> dict:
    import torch

    from . import metrics, precision, scorer
    from .benchmarks import read_items

    checkpoint = step_dir(cfg, results, step.needs()) / "model"
    items = read_items(eval_items_dir(cfg, results) / EVAL_ITEMS_FILE)
    computed_in = precision.eval_precision(cfg, cuda=torch.cuda.is_available())
    table = scorer.score_checkpoint(checkpoint, cfg.eval, items=items, precision=computed_in)
    io.write_parquet(out / "items.parquet", table)
    scores = metrics.score_table(table)
    io.write_parquet(out / "scores.parquet", scores)
    return {"items": int(table["item"].nunique()), "benchmarks": int(scores.shape[0]),
            "mean_accuracy": float(scores["accuracy"].mean()), "precision": computed_in,
            "cpu": precision.cpu_model()}


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
