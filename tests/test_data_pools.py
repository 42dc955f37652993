"""End to end on the smoke preset: prepare the pools -> train the tokenizer -> build one mixture."""

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from magiclib.config import load_config
from magiclib.data import build_mixture, build_tokenizer, data_table, decontam, prepare_pools
from magiclib.data.pools import SAMPLE_SEED, study_pools
from magiclib.data.sources import pool_source, read_docs

pytestmark = pytest.mark.slow  # about 6 s: reads the real mirror

OVERRIDES = ["data.docs_per_pool=60", "data.tokens_per_mixture=5000", "data.tokenizer_train_docs=100"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Pools of the smoke preset, decontaminated against one planted 'benchmark': a wikipedia passage."""
    cfg = load_config("smoke", OVERRIDES)
    wiki, _ = read_docs(pool_source("wikipedia"), "mirror", cfg.data.docs_per_pool, SAMPLE_SEED)
    planted = wiki.iloc[5]
    item = " ".join(planted["text"].split()[100:130])
    out = tmp_path_factory.mktemp("pools")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decontam, "study_benchmark_texts", lambda n: {"planted": [item]})
        summary = prepare_pools(cfg, out)
    return cfg, out, summary, planted["id"]


def test_pools_and_reports_are_written(prepared):
    cfg, out, summary, _ = prepared
    for name in [*cfg.web_sources, *study_pools(cfg)]:
        pool = pd.read_parquet(out / "pools" / f"{name}.parquet")
        assert list(pool.columns) == ["id", "text", "source"] and len(pool) == summary["docs"][name] > 0
    filters = pd.read_parquet(out / "filters.parquet")
    v2 = filters[filters["pool"] == "V2"].set_index("stage")
    assert list(v2.index) == ["sample", "heuristic", "exact_dedup", "near_dedup", "edu", "decontam"]
    assert (v2["docs_in"].iloc[1:].to_numpy() == v2["docs_out"].iloc[:-1].to_numpy()).all()  # a chain
    assert v2.loc["edu", "docs_out"] == np.ceil(v2.loc["edu", "docs_in"] * cfg.data.edu_keep_fraction)
    examples = pd.read_parquet(out / "examples.parquet")
    assert {"heuristic", "edu", "quality"} <= set(examples["filter"])
    assert set(examples["decision"]) == {"kept", "dropped"}


def test_web_sources_differ(prepared):
    _, out, _, _ = prepared
    ids = {name: set(pd.read_parquet(out / "pools" / f"{name}.parquet")["id"]) for name in ("V1", "V2", "V3")}
    assert ids["V2"] < ids["V1"] and ids["V3"] < ids["V1"] and ids["V2"] != ids["V3"]


def test_planted_benchmark_passage_is_removed(prepared):
    _, out, summary, planted_id = prepared
    assert planted_id not in set(pd.read_parquet(out / "pools" / "wikipedia.parquet")["id"])
    table = pd.read_parquet(out / "decontam.parquet").set_index(["pool", "benchmark"])
    assert table.loc[("wikipedia", "planted"), "docs_removed"] == 1
    assert summary["removed"]["wikipedia"]["decontam"] == 1


def test_tokenizer_and_mixture_from_prepared_pools(prepared, tmp_path):
    cfg, out, summary, _ = prepared
    build_tokenizer(cfg, out, tmp_path / "tok")
    assert len(AutoTokenizer.from_pretrained(tmp_path / "tok")) <= cfg.data.vocab_size
    stats = build_mixture(cfg, "V3-P0", out, tmp_path / "tok", tmp_path / "mix", seed=0)
    assert len(np.load(tmp_path / "mix" / "tokens.npy")) == stats["tokens"] == 5000
    row = data_table([{"step": "pools", "summary": summary}, {"step": "mixture V3-P0 s0", "summary": stats}]).iloc[0]
    assert row["mixture"] == "V3-P0" and row["tokens_web"] == 3250
    assert row["removed_quality"] == summary["removed"]["V3"]["quality"] > 0 and row["removed_edu"] == 0
