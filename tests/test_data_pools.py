"""End to end on the smoke preset: prepare the pools -> train the tokenizer -> build one mixture; pools written
whole or not at all, byte-identical for one config, through filter blocks that report what they drop."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from datatrove.data import Document
from transformers import AutoTokenizer

from magiclib.config import load_config
from magiclib.data import build_mixture, build_tokenizer, data_table, decontam, prepare_pools, sources, stages
from magiclib.data.pools import SAMPLE_SEED, pool_path, read_pool, study_pools, write_pool
from magiclib.data.sources import PoolSource, pool_source, read_docs

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


@pytest.mark.slow  # the module's real-mirror tests share one ~5 s preparation
def test_pools_and_reports_are_written(prepared):
    cfg, out, summary, _ = prepared
    for name in [*cfg.web_sources, *study_pools(cfg)]:
        pool = read_pool(out, name)
        assert list(pool.columns) == ["id", "text", "source"] and len(pool) == summary["docs"][name] > 0
    filters = pd.read_parquet(out / "filters.parquet")
    v2 = filters[filters["pool"] == "V2"].set_index("stage")
    assert list(v2.index) == ["sample", "heuristic", "exact_dedup", "near_dedup", "edu", "decontam"]
    assert (v2["docs_in"].iloc[1:].to_numpy() == v2["docs_out"].iloc[:-1].to_numpy()).all()  # a chain
    assert v2.loc["edu", "docs_out"] == np.ceil(v2.loc["edu", "docs_in"] * cfg.data.edu_keep_fraction)
    examples = pd.read_parquet(out / "examples.parquet")
    assert {"heuristic", "edu", "quality"} <= set(examples["filter"])
    assert set(examples["decision"]) == {"kept", "dropped"}


@pytest.mark.slow
def test_web_sources_differ(prepared):
    _, out, _, _ = prepared
    ids = {name: set(read_pool(out, name)["id"]) for name in ("V1", "V2", "V3")}
    assert ids["V2"] < ids["V1"] and ids["V3"] < ids["V1"] and ids["V2"] != ids["V3"]


@pytest.mark.slow
def test_planted_benchmark_passage_is_removed(prepared):
    _, out, summary, planted_id = prepared
    assert planted_id not in set(read_pool(out, "wikipedia")["id"])
    table = pd.read_parquet(out / "decontam.parquet").set_index(["pool", "benchmark"])
    assert table.loc[("wikipedia", "planted"), "docs_removed"] == 1
    assert summary["removed"]["wikipedia"]["decontam"] == 1


@pytest.mark.slow
def test_tokenizer_and_mixture_from_prepared_pools(prepared, tmp_path):
    cfg, out, summary, _ = prepared
    build_tokenizer(cfg, out, tmp_path / "tok")
    assert len(AutoTokenizer.from_pretrained(tmp_path / "tok")) <= cfg.data.vocab_size
    stats = build_mixture(cfg, "V3-P0", out, tmp_path / "tok", tmp_path / "mix", seed=0)
    assert len(np.load(tmp_path / "mix" / "tokens" / "00000.npy")) == stats["tokens"] == 5000
    row = data_table([{"step": "pools", "summary": summary}, {"step": "mixture V3-P0 s0", "summary": stats}]).iloc[0]
    assert row["mixture"] == "V3-P0" and row["tokens_web"] == 3250
    assert row["removed_quality"] == summary["removed"]["V3"]["quality"] > 0 and row["removed_edu"] == 0


def test_hub_mode_reads_each_web_source_from_its_own_dataset(tmp_path, monkeypatch):
    """With data.source=hub the web sources are the (already filtered) hub datasets: sampled, decontaminated."""
    _hub_pools(tmp_path, monkeypatch, planted="edu text number 3 edu text number 3 edu text number 3 edu text number 3")
    cfg = load_config("smoke", ["data.source=hub", "data.docs_per_pool=null"])
    summary = prepare_pools(cfg, tmp_path / "out")
    assert summary["where"] == "hub"
    v2 = read_pool(tmp_path / "out", "V2")
    assert v2["text"].str.startswith("edu text").all() and v2["source"].str.endswith("/edu").all()
    stages = pd.read_parquet(tmp_path / "out" / "filters.parquet").query("pool == 'V2'")["stage"].tolist()
    assert stages == ["sample", "decontam"]
    assert summary["removed"]["V2"]["decontam"] == 1 and len(v2) == 29  # the one holding the planted item
    assert summary["removed"]["V1"]["decontam"] == 0 and summary["docs"]["books"] == 30


def _hub_pools(tmp_path, monkeypatch, planted="nothing like the pools"):
    """Every hub source a local folder of 30 gzip'd JSONL rows (no ids), under the same `load_rows` code; the
    benchmarks hold one item, `planted`."""
    def local_dataset(name, field, code=False):
        folder = tmp_path / "hub" / name
        if not folder.exists():
            folder.mkdir(parents=True)
            with gzip.open(folder / "train.jsonl.gz", "wt") as f:
                f.writelines(json.dumps({field: f"{name} text number {i} " * 8}) + "\n" for i in range(30))
        return PoolSource(str(folder), None, "train", None, field, code=code)

    monkeypatch.setattr(sources, "WEB_HUB_SOURCES", {f: local_dataset(f, "content") for f in ("heuristic", "edu",
                                                                                                "quality")})
    monkeypatch.setattr(sources, "POOL_SOURCES", {p: local_dataset(p, "text", code=p.startswith("code"))
                                                  for p in sources.POOL_SOURCES})
    monkeypatch.setattr(decontam, "study_benchmark_texts", lambda n: {"planted": [planted]})


def test_same_config_gives_byte_identical_pools(tmp_path, monkeypatch):
    _hub_pools(tmp_path, monkeypatch)
    cfg = load_config("smoke", ["data.source=hub", "data.docs_per_pool=12"])
    outputs = []
    for run in ("a", "b"):
        prepare_pools(cfg, tmp_path / run)
        outputs.append({p.relative_to(tmp_path / run): p.read_bytes() for p in (tmp_path / run).rglob("*.parquet")})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 3 + 3 + len(study_pools(cfg))
    assert not list((tmp_path / "a").glob(".*"))  # no staging or work folder is left behind
    assert len(read_pool(tmp_path / "a", "V1")) == 12


def test_a_failed_pool_write_leaves_the_previous_pool_whole(tmp_path):
    report = stages.Report(tmp_path / "tallies")
    rows = [Document(text=f"document {i}", id=str(i), metadata={"source": "s"}) for i in range(5)]

    def reader(data, rank, world_size):
        yield from rows

    def failing(data, rank, world_size):
        yield rows[0]
        raise OSError("disk gone")

    write_pool(tmp_path, "p", [reader], report)
    with pytest.raises(OSError, match="disk gone"):
        write_pool(tmp_path, "p", [failing], report)
    assert read_pool(tmp_path, "p")["id"].tolist() == ["0", "1", "2", "3", "4"]
    assert [p.name for p in (tmp_path / "pools").iterdir() if not p.name.startswith(".")] == ["p"]
    with pytest.raises(FileNotFoundError, match=r"pool 'q' not found .*prepared pools: \['p'\]"):
        pool_path(tmp_path, "q")


def test_filter_blocks_tally_what_they_drop(tmp_path):
    """Heuristic rules then decontamination as blocks: kept documents flow on, the report counts each stage."""
    good = ("The river runs through the middle of the old town, and most of the houses that line its banks were "
            "built by merchants in the eighteenth century. Visitors often walk along the water in the evening, when "
            "the light is soft and the streets are quiet. A small museum near the bridge tells the story of the "
            "trade that made the town rich, with maps, ledgers and letters from families who lived here.")
    planted = "a man is sitting on a roof and he starts pulling up roofing on a roof and throws it into the yard"
    docs = [Document(text=t, id=str(i), metadata={"source": "s"})
            for i, t in enumerate([good + " one", "too short", good + " " + planted, good + " two"])]
    index = decontam.NgramIndex.from_texts({"hellaswag": [planted]}, 13)
    report = stages.Report(tmp_path / "tallies")
    steps = [lambda data, rank, world_size: iter(docs), stages.Heuristic(["V1"], report.folder),
             stages.Decontaminate(index, "V1", False, report.folder)]
    write_pool(tmp_path, "V1", steps, report)
    assert read_pool(tmp_path, "V1")["id"].tolist() == ["0", "3"]
    assert [(r["stage"], r["docs_in"], r["docs_out"]) for r in report.rows] == [("heuristic", 4, 3), ("decontam", 3, 2)]
    assert report.decontam == [{"pool": "V1", "benchmark": "hellaswag", "docs_removed": 1}]
    assert {(e["filter"], e["decision"]) for e in report.examples} == {("heuristic", "kept"), ("heuristic", "dropped"),
                                                                        ("decontam", "kept"), ("decontam", "dropped")}
