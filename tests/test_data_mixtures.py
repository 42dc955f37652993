"""Mixtures: token proportions, repetition counted as epochs, and byte-identical output for a seed."""

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from magiclib import io
from magiclib.config import ConfigError, load_config
from magiclib.data import mixtures
from magiclib.data.mixtures import build_mixture, mixture_targets
from magiclib.data.shards import TokenShards, TokenStore
from magiclib.data.tokenizer import build_tokenizer

POOLS = ["V1", "V2", "V3", "code_python", "code_go", "wikipedia", "technical", "reference", "books"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Tiny prepared pools (books holds only 3 documents, so it must repeat) and a 300-token BPE."""
    root = tmp_path_factory.mktemp("data")
    for pool in POOLS:
        (root / "pools" / pool).mkdir(parents=True)
        n = 3 if pool == "books" else 40
        texts = [f"{pool} document {i}: " + " ".join(f"w{(i * 7 + j) % 50}" for j in range(30 + i)) for i in range(n)]
        pd.DataFrame({"id": [f"{pool}-{i}" for i in range(n)], "text": texts, "source": pool}).to_parquet(
            root / "pools" / pool / "00000.parquet")
    cfg = load_config("smoke", ["data.vocab_size=300", "data.tokenizer_train_docs=100",
                                "data.tokens_per_mixture=6000"])
    build_tokenizer(cfg, root, root / "tok")
    return cfg, root


def test_targets_split_code_and_curated_evenly():
    cfg = load_config("smoke", ["data.tokens_per_mixture=40000"])
    assert mixture_targets(cfg, "V1-P0") == {
        "V1": ("web", 26000), "code_python": ("code", 10000), "wikipedia": ("curated", 1000),
        "technical": ("curated", 1000), "reference": ("curated", 1000), "books": ("curated", 1000)}
    targets = mixture_targets(cfg, "V2-P2")
    assert targets["code_python"] == targets["code_go"] == ("code", 9000) and targets["V2"] == ("web", 10000)


def test_unknown_mixture_is_refused():
    with pytest.raises(ConfigError, match="unknown mixture 'V4-P0'"):
        mixture_targets(load_config("smoke"), "V4-P0")


def test_mixture_meets_proportions_and_counts_epochs(built, tmp_path):
    cfg, root = built
    stats = build_mixture(cfg, "V2-P1", root, root / "tok", tmp_path, seed=0)
    tokens = np.load(tmp_path / "tokens" / "00000.npy")
    assert tokens.dtype == np.uint16 and len(tokens) == stats["tokens"] == 6000
    assert io.read_json(tmp_path / "stats.json") == stats
    eos = 0  # <|endoftext|> is the first special token
    assert (tokens == eos).sum() == stats["documents"] and tokens[-1] == eos
    for pool, info in stats["pools"].items():
        assert abs(info["actual_share"] - info["target_share"]) < 1e-3, pool
    assert stats["pools"]["V2"]["target_share"] == pytest.approx(0.45)
    assert stats["pools"]["books"]["epochs"] > 1  # 300 tokens from 3 short documents
    assert stats["pools"]["V2"]["epochs"] < 1


def test_same_seed_same_bytes_other_seed_other_bytes(built, tmp_path):
    cfg, root = built
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        build_mixture(cfg, "V1-P2", root, root / "tok", tmp_path / name, seed=seed)
    read = {name: (tmp_path / name / "tokens" / "00000.npy").read_bytes() for name in "abc"}
    assert read["a"] == read["b"] != read["c"]


def test_missing_pool_says_what_to_run(built, tmp_path):
    cfg, root = built
    with pytest.raises(FileNotFoundError, match="pool 'V1' not found.*run prepare_pools"):
        build_mixture(cfg, "V1-P0", tmp_path, root / "tok", tmp_path / "out", seed=0)


@pytest.mark.slow
def test_two_tasks_store_the_same_tokens_as_one(built, tmp_path, monkeypatch):
    """Tokenisation in two parallel datatrove tasks (worker processes) stores what one task stores."""
    _, root = built
    monkeypatch.setattr(mixtures, "MIN_DOCS_PER_TASK", 1)  # so that these few rows go to two tasks
    tokenizer = mixtures.StudyTokenizer(root / "tok")
    stores = {}
    for tasks in (1, 2):
        folder = tmp_path / f"t{tasks}"
        pool = mixtures.PoolStore(root / "pools" / "V2", TokenStore(folder, 40, tokenizer.dtype), tokenizer)
        pool.tokenize(np.arange(3, 40, 2), tasks)
        assert len(list(folder.glob("*.rows.npy"))) == tasks
        stores[tasks] = pool.store
    assert np.array_equal(stores[1].length, stores[2].length) and (stores[1].length[1::2][1:] > 0).all()
    for row in range(3, 40, 2):
        assert np.array_equal(stores[1].read(row), stores[2].read(row))


def test_shards_split_the_stream_and_do_not_change_it(built, tmp_path):
    cfg, root = built
    build_mixture(cfg, "V3-P1", root, root / "tok", tmp_path / "many", seed=3, shard_tokens=1000)
    build_mixture(cfg, "V3-P1", root, root / "tok", tmp_path / "one", seed=3)
    shards = sorted((tmp_path / "many" / "tokens").glob("*.npy"))
    assert len(shards) == 6 and all(len(np.load(f)) == 1000 for f in shards)
    assert np.array_equal(TokenShards(tmp_path / "many" / "tokens")[0:6000],
                          np.load(tmp_path / "one" / "tokens" / "00000.npy"))


def test_mixture_is_tokenized_like_the_saved_tokenizer(built, tmp_path):
    """Each drawn document is the HF tokenizer's ids plus eos; the pool's last one is cut and keeps its eos."""
    cfg, root = built
    stats = build_mixture(cfg, "V1-P0", root, root / "tok", tmp_path, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(root / "tok")
    texts = pd.read_parquet(root / "pools" / "V1")["text"].tolist()
    known = {tuple(tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]) for t in texts}
    tokens = np.load(tmp_path / "tokens" / "00000.npy").tolist()
    ends = [i for i, t in enumerate(tokens) if t == tokenizer.eos_token_id]
    docs = [tuple(tokens[a + 1:b + 1]) for a, b in zip([-1, *ends[:-1]], ends, strict=True)]
    assert len(docs) == stats["documents"]
    whole_v1 = [d for d in docs if d in known]
    assert len(whole_v1) >= stats["pools"]["V1"]["docs"] - 1  # all V1 documents but its cut last one
