"""Step 1 of the data pipeline: read every pool, filter the web three ways, decontaminate, report.

Writes `<out>/pools/<name>.parquet` (id, text, source) for each web source (V1, V2, V3) and each code
and curated pool the study uses, and the report tables the data chapter reads:
`filters.parquet` (stage, pool, docs and approximate tokens in and out), `examples.parquet` (a few kept
and dropped documents per filter, with the reason) and `decontam.parquet` (pool, benchmark, docs_removed).
Token counts there are estimates (words x 1.3 for text, characters / 3.5 for code), not tokenizer counts.

From the mirror, web sources share one chain over the raw `web` pool: sample, heuristic rules, exact
and near dedup (that is V1); V2 and V3 then keep the top fraction by their classifier; each is finally
decontaminated. From the hub, each web source is its own already-filtered dataset and is only sampled
and decontaminated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import io
from ..config import POOLS, StudyConfig
from ..errors import MissingFile
from ..hub import load_rows
from . import classifier, decontam, dedup, filters, sources
from .text import approx_tokens

POOLS_SUBDIR = "pools"
SAMPLE_SEED = 0  # pools are shared by every training seed, so they are sampled with one fixed seed
EDU_POSITIVE_POOLS = ("wikipedia", "technical")  # encyclopedic and technical writing: "educational"
EXAMPLES_PER_DECISION = 3
SNIPPET_CHARS = 300


@dataclass
class FilterLog:
    """Collects the report rows while documents pass through the stages."""

    rows: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)

    def apply(self, stage: str, pools: list[str], docs: pd.DataFrame, reasons: list[str | None], *,
              code: bool = False, scores: np.ndarray | None = None) -> pd.DataFrame:
        """Keep the documents whose reason is None; log the stage once for each pool in `pools`."""
        keep = np.array([r is None for r in reasons], dtype=bool)
        tokens = _doc_tokens(docs, code)
        row = {"stage": stage, "docs_in": len(docs), "docs_out": int(keep.sum()),
               "tokens_in": int(tokens.sum()), "tokens_out": int(tokens[keep].sum())}
        self.rows.extend({**row, "pool": pool} for pool in pools)
        self._add_examples(stage, pools, docs, keep, reasons, scores)
        return docs[keep].reset_index(drop=True)

    def sample(self, pools: list[str], docs: pd.DataFrame, available: int | None, code: bool) -> None:
        tokens = int(_doc_tokens(docs, code).sum())
        self.rows.extend({"stage": "sample", "pool": pool, "docs_in": available, "docs_out": len(docs),
                          "tokens_in": None, "tokens_out": tokens} for pool in pools)

    def _add_examples(self, stage, pools, docs, keep, reasons, scores) -> None:
        if scores is not None:  # a classifier: its highest-scoring kept and lowest-scoring dropped documents
            order = np.argsort(-scores, kind="stable")
            kept = [i for i in order if keep[i]][:EXAMPLES_PER_DECISION]
            dropped = [i for i in order[::-1] if not keep[i]][:EXAMPLES_PER_DECISION]
        else:  # rules: the first kept documents, and the first dropped one of each kind of reason
            kept = np.flatnonzero(keep)[:EXAMPLES_PER_DECISION].tolist()
            first_of_kind: dict[str, int] = {}
            for i in np.flatnonzero(~keep):
                first_of_kind.setdefault(reasons[i].split(":")[0], int(i))
            dropped = list(first_of_kind.values())[:2 * EXAMPLES_PER_DECISION]
        for i, decision in [(i, "kept") for i in kept] + [(i, "dropped") for i in dropped]:
            reason = reasons[i] or (f"score: {scores[i]:.2f}" if scores is not None else "passed")
            self.examples.append({"filter": stage, "pools": ", ".join(pools), "decision": decision,
                                  "reason": reason, "id": docs["id"].iloc[i],
                                  "snippet": docs["text"].iloc[i][:SNIPPET_CHARS]})


def _doc_tokens(docs: pd.DataFrame, code: bool) -> np.ndarray:
    return np.array([approx_tokens([text], code) for text in docs["text"]], dtype=np.int64)


def prepare_pools(cfg: StudyConfig, out_dir: Path) -> dict:
    """Read, filter and decontaminate every pool of the study; write pools and reports; return a summary."""
    out_dir = Path(out_dir)
    where = sources.location(cfg.data.source)
    n = cfg.data.decontam_ngram
    index = decontam.NgramIndex.from_texts(decontam.study_benchmark_texts(n), n)
    log = FilterLog()
    pools = _web_from_mirror(cfg, log) if where == "mirror" else _web_from_hub(cfg, log)
    is_code = dict.fromkeys(pools, False)
    for name in study_pools(cfg):
        source = sources.pool_source(name)
        docs, available = sources.read_docs(source, where, cfg.data.docs_per_pool, SAMPLE_SEED)
        log.sample([name], docs, available, source.code)
        pools[name], is_code[name] = docs, source.code
    decontam_rows = []
    for name, docs in tqdm(list(pools.items()), desc="decontaminate", unit="pool"):
        found = index.overlaps(docs["text"].tolist())
        reasons = [f"shares a {index.n}-gram with {', '.join(b)}" if b else None for b in found]
        decontam_rows += [{"pool": name, "benchmark": b, "docs_removed": sum(b in f for f in found)}
                          for b in index.benchmarks]
        pools[name] = log.apply("decontam", [name], docs, reasons, code=is_code[name])
    for name, docs in pools.items():
        io.write_parquet(out_dir / POOLS_SUBDIR / f"{name}.parquet", docs)
    filters_table = pd.DataFrame(log.rows, columns=["stage", "pool", "docs_in", "docs_out", "tokens_in",
                                                    "tokens_out"])
    io.write_parquet(out_dir / "filters.parquet", filters_table)
    io.write_parquet(out_dir / "examples.parquet", pd.DataFrame(log.examples))
    io.write_parquet(out_dir / "decontam.parquet", pd.DataFrame(decontam_rows, columns=["pool", "benchmark",
                                                                                      "docs_removed"]))
    return _summary(where, pools, filters_table)


def study_pools(cfg: StudyConfig) -> list[str]:
    """The code and curated pools some mixture of the study draws from, in `config.POOLS` order."""
    used = {p for web in cfg.web_sources.values() for p in web.code_pools} | set(cfg.data.curated_pools)
    return [p for p in POOLS if p in used]


def read_pool(pools_dir: Path, name: str) -> pd.DataFrame:
    """A prepared pool (id, text, source), with a clear error when it was not prepared."""
    return pd.read_parquet(pool_path(pools_dir, name))


def pool_path(pools_dir: Path, name: str) -> Path:
    """Where a prepared pool is, with a clear error when it was not prepared."""
    path = Path(pools_dir) / POOLS_SUBDIR / f"{name}.parquet"
    if not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.parquet"))
        raise MissingFile(f"pool {name!r} not found at {path} (prepared pools: {have}); run "
                          "prepare_pools (`magic data`) with a config that uses this pool")
    return path


def _web_from_mirror(cfg: StudyConfig, log: FilterLog) -> dict[str, pd.DataFrame]:
    names = list(cfg.web_sources)
    docs, available = sources.read_docs(sources.pool_source("web"), "mirror", cfg.data.docs_per_pool,
                                        SAMPLE_SEED)
    log.sample(names, docs, available, code=False)
    reasons = [filters.heuristic_reason(t) for t in tqdm(docs["text"], desc="heuristic rules", unit="doc")]
    docs = log.apply("heuristic", names, docs, reasons)
    docs = log.apply("exact_dedup", names, docs,
                     dedup.exact_duplicate_reasons(docs["id"].tolist(), docs["text"].tolist()))
    docs = log.apply("near_dedup", names, docs, dedup.near_duplicate_reasons(
        docs["id"].tolist(), docs["text"].tolist(), cfg.data.near_dup_threshold))
    out = {}
    scores_by_filter: dict[str, np.ndarray] = {}
    for name, web in cfg.web_sources.items():
        if web.filter == "heuristic":
            out[name] = docs
            continue
        if web.filter not in scores_by_filter:
            positives = _positives(web.filter, len(docs))
            scores_by_filter[web.filter] = classifier.cross_fit_scores(positives, docs["text"].tolist(),
                                                                       SAMPLE_SEED)
        scores = scores_by_filter[web.filter]
        fraction = cfg.data.edu_keep_fraction if web.filter == "edu" else cfg.data.quality_keep_fraction
        keep = classifier.top_fraction(scores, fraction)
        reasons = [None if k else f"{web.filter} score: {s:.2f}, not in the top {fraction:.0%}"
                   for k, s in zip(keep, scores, strict=True)]
        out[name] = log.apply(web.filter, [name], docs, reasons, scores=scores)
    return out


def _web_from_hub(cfg: StudyConfig, log: FilterLog) -> dict[str, pd.DataFrame]:
    out = {}
    for name, web in cfg.web_sources.items():
        docs, available = sources.read_docs(sources.WEB_HUB_SOURCES[web.filter], "hub", cfg.data.docs_per_pool,
                                            SAMPLE_SEED)
        log.sample([name], docs, available, code=False)
        out[name] = docs
    return out


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


def _summary(where: str, pools: dict[str, pd.DataFrame], filters_table: pd.DataFrame) -> dict:
    steps = filters_table[filters_table["stage"] != "sample"]
    removed: dict[str, dict[str, int]] = {}
    for row in steps.itertuples(index=False):
        removed.setdefault(row.pool, {})[row.stage] = int(row.docs_in - row.docs_out)
    return {"where": where, "docs": {name: len(docs) for name, docs in pools.items()}, "removed": removed}
