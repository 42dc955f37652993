"""Step 1 of the data pipeline: read every pool, filter the web three ways, decontaminate, report.

Writes each web source (V1, V2, V3) and each code and curated pool the study uses as a folder
`<out>/pools/<name>/` of parquet files (id, text, source), and the report tables the data chapter reads:
`filters.parquet` (stage, pool, docs and approximate tokens in and out), `examples.parquet` (a few kept
and dropped documents per filter, with the reason) and `decontam.parquet` (pool, benchmark, docs_removed).
Token counts there are estimates (words x 1.3 for text, characters / 3.5 for code), not tokenizer counts.

From the mirror, web sources share one chain over the raw `web` pool: sample, heuristic rules, exact
and near dedup (that is V1); V2 and V3 then keep the top fraction by their classifier; each is finally
decontaminated. From the hub, each web source is its own already-filtered dataset and is only sampled
and decontaminated.

Every stage is a streaming datatrove block (`stages`), so memory does not grow with the corpus: a pool is
written as it is read, in bounded row groups, under a temporary name renamed when it is complete. What does
grow is a fixed size per document: the sample's row numbers, dedup hashes and signatures, classifier scores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import io
from ..config import POOLS, StudyConfig
from ..errors import MissingFile
from ..hub import load_rows
from . import blocks, classifier, decontam, sources, stages

POOLS_SUBDIR = "pools"
SAMPLE_SEED = 0  # pools are shared by every training seed, so they are sampled with one fixed seed
EDU_POSITIVE_POOLS = ("wikipedia", "technical")  # encyclopedic and technical writing: "educational"
CLASSIFIER_FIT_DOCS = 10_000  # web documents (and as many positives) a classifier is fitted on, at most


def prepare_pools(cfg: StudyConfig, out_dir: Path) -> dict:
    """Read, filter and decontaminate every pool of the study; write pools and reports; return a summary."""
    out_dir = Path(out_dir)
    where = sources.location(cfg.data.source)
    n = cfg.data.decontam_ngram
    index = decontam.NgramIndex.from_texts(decontam.study_benchmark_texts(n), n)
    (out_dir / POOLS_SUBDIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as work:
        report = stages.Report(Path(work) / "tallies")
        if where == "mirror":
            _web_from_mirror(cfg, out_dir, Path(work), index, report)
        else:
            for name, web in cfg.web_sources.items():
                hub_pool(out_dir, name, sources.WEB_HUB_SOURCES[web.filter], cfg.data.docs_per_pool, index,
                         report)
        for name in study_pools(cfg):
            source = sources.pool_source(name)
            write_pool(out_dir, name, [
                sources.sample_reader(source, where, cfg.data.docs_per_pool, SAMPLE_SEED, [name], report.folder),
                stages.Decontaminate(index, name, source.code, report.folder)], report)
    # Stages in chain order (pools ran one after another): the data chapter draws them in this order.
    filters_table = pd.DataFrame(report.rows, columns=["stage", "pool", "docs_in", "docs_out", "tokens_in",
                                                       "tokens_out"]).sort_values(
        "stage", key=lambda stage: stage.map(stages.STAGES.index), kind="stable", ignore_index=True)
    io.write_parquet(out_dir / "filters.parquet", filters_table)
    io.write_parquet(out_dir / "examples.parquet", pd.DataFrame(report.examples))
    io.write_parquet(out_dir / "decontam.parquet", pd.DataFrame(report.decontam, columns=["pool", "benchmark",
                                                                                        "docs_removed"]))
    names = [*cfg.web_sources, *study_pools(cfg)]
    return _summary(where, {name: blocks.pool_rows(pool_path(out_dir, name)) for name in names}, filters_table)


def hub_pool(out_dir: Path, name: str, source: sources.PoolSource, n: int | None, index: decontam.NgramIndex,
             report: stages.Report, tasks: int = 1) -> Path:
    """One pool from a hub dataset: streamed, sampled, decontaminated and written in `tasks` tasks."""
    return write_pool(out_dir, name, [
        sources.sample_reader(source, "hub", n, SAMPLE_SEED, [name], report.folder),
        stages.Decontaminate(index, name, source.code, report.folder)], report, tasks)


def write_pool(out_dir: Path, name: str, steps: list, report: stages.Report, tasks: int = 1) -> Path:
    """Run `steps` into the pool folder `<out_dir>/pools/<name>`, which appears only once it is complete
    (a rerun replaces it whole); add the steps' tallies to `report`."""
    final = Path(out_dir) / POOLS_SUBDIR / name
    staging = final.with_name(f".{name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    _write_folder(staging, steps, report, tasks)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def _write_folder(folder: Path, steps: list, report: stages.Report, tasks: int = 1) -> None:
    with tempfile.TemporaryDirectory(prefix="datatrove-logs-") as logs:
        blocks.run_pipeline([*steps, blocks.PoolWriter(folder)], tasks, logs)
    folder.mkdir(parents=True, exist_ok=True)
    if not blocks.pool_files(folder):  # nothing passed: an empty pool still has its columns
        pq.write_table(pa.Table.from_pylist([], schema=blocks.POOL_SCHEMA), folder / "00000.parquet")
    report.collect(steps)


def study_pools(cfg: StudyConfig) -> list[str]:
    """The code and curated pools some mixture of the study draws from, in `config.POOLS` order."""
    used = {p for web in cfg.web_sources.values() for p in web.code_pools} | set(cfg.data.curated_pools)
    return [p for p in POOLS if p in used]


def read_pool(pools_dir: Path, name: str) -> pd.DataFrame:
    """A whole prepared pool (id, text, source) in memory, with a clear error when it was not prepared."""
    files = blocks.pool_files(pool_path(pools_dir, name))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def pool_path(pools_dir: Path, name: str) -> Path:
    """Where a prepared pool is (a folder of parquet files), with a clear error when it was not prepared."""
    path = Path(pools_dir) / POOLS_SUBDIR / name
    if not path.is_dir():
        have = sorted(p.name for p in path.parent.glob("*") if p.is_dir() and not p.name.startswith("."))
        raise MissingFile(f"pool {name!r} not found at {path} (prepared pools: {have}); run "
                          "prepare_pools (`magic data`) with a config that uses this pool")
    return path


def _web_from_mirror(cfg: StudyConfig, out_dir: Path, work: Path, index: decontam.NgramIndex,
                     report: stages.Report) -> None:
    names, tallies = list(cfg.web_sources), report.folder
    deduped = work / "web"  # the web after rules and dedup: V1 before decontamination, V2 and V3's input
    _write_folder(deduped, [
        sources.sample_reader(sources.pool_source("web"), "mirror", cfg.data.docs_per_pool, SAMPLE_SEED, names,
                              tallies),
        stages.Heuristic(names, tallies), stages.ExactDedup(names, tallies),
        stages.NearDedup(names, cfg.data.near_dup_threshold, tallies)], report)
    web_filters = list(dict.fromkeys(w.filter for w in cfg.web_sources.values() if w.filter != "heuristic"))
    scores = _classifier_scores(web_filters, deduped)
    for name, web in cfg.web_sources.items():
        steps = [stages.PoolReader(deduped)]
        if web.filter != "heuristic":
            fraction = cfg.data.edu_keep_fraction if web.filter == "edu" else cfg.data.quality_keep_fraction
            steps.append(stages.ClassifierKeep(web.filter, name, scores[web.filter], fraction, tallies))
        steps.append(stages.Decontaminate(index, name, False, tallies))
        write_pool(out_dir, name, steps, report)


def _classifier_scores(web_filters: list[str], pool: Path) -> dict[str, np.ndarray]:
    """For each classifier filter, a score per row of `pool`: two fold models fitted on at most
    `CLASSIFIER_FIT_DOCS` of its documents (fold = row mod 2) and as many positives, and each row scored by
    the model of its fold. The fitted rows are scored from their features; the rest in one batched pass."""
    if not web_filters:
        return {}
    n_rows = blocks.pool_rows(pool)
    fit_rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(n_rows, size=min(n_rows, CLASSIFIER_FIT_DOCS),
                                                                 replace=False))
    with blocks.quiet():
        x_neg = classifier.features([d.text for d in blocks.PoolRowsReader(pool, fit_rows).run()])
    models = {f: classifier.fit_folds(classifier.features(_positives(f, len(fit_rows))), x_neg,
                                      fit_rows % classifier.FOLDS) for f in web_filters}
    scores = {f: np.empty(n_rows) for f in web_filters}
    for f in web_filters:
        scores[f][fit_rows] = classifier.fold_scores(models[f], x_neg, fit_rows % classifier.FOLDS)
    rest = np.setdiff1d(np.arange(n_rows), fit_rows)
    with blocks.quiet():
        for batch in blocks.text_batches(blocks.PoolRowsReader(pool, rest).run(), stages.BATCH_DOCS,
                                         stages.BATCH_CHARS):
            rows = np.array([int(d.id) for d in batch])
            x = classifier.features([d.text for d in batch])
            for f in web_filters:
                scores[f][rows] = classifier.fold_scores(models[f], x, rows % classifier.FOLDS)
    return scores


def _positives(web_filter: str, n: int) -> list[str]:
    """Up to `n` positive texts for a classifier: curated pools (edu) or instruction turns (quality)."""
    rng = np.random.default_rng(SAMPLE_SEED)
    if web_filter == "edu":
        texts = [t for pool in EDU_POSITIVE_POOLS
                 for t in sources.read_docs(sources.pool_source(pool), "mirror", n, SAMPLE_SEED)[0]["text"]]
    else:
        rows = load_rows(sources.SFT_SOURCE, where="mirror")
        rows = rows.select(np.sort(rng.choice(len(rows), size=min(n, len(rows)), replace=False)))
        texts = ["\n".join(turn["content"] for turn in messages) for messages in rows["messages"]]
    if len(texts) > n:
        texts = [texts[i] for i in np.sort(rng.choice(len(texts), size=n, replace=False))]
    return texts


def _summary(where: str, docs: dict[str, int], filters_table: pd.DataFrame) -> dict:
    steps = filters_table[filters_table["stage"] != "sample"]
    removed: dict[str, dict[str, int]] = {}
    for row in steps.itertuples(index=False):
        removed.setdefault(row.pool, {})[row.stage] = int(row.docs_in - row.docs_out)
    return {"where": where, "docs": docs, "removed": removed}
