"""Tests of the training loop: schedule, data order, loss masking, learning, resuming, divergence, DDP."""

import math
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from test_sft_data import CONVERSATION, make_chat_tokenizer
from transformers import AutoTokenizer

from magiclib import io, sft_data, train
from magiclib.config import ModelConfig, ScaleConfig, TrainConfig
from magiclib.model import build_model

torch.set_num_threads(1)

# A tiny grammar: its sentences have far less entropy per token than their unigram distribution.
NOUNS, VERBS, PLACES = ["cat", "dog", "bird", "fox"], ["sat", "slept", "ran", "hid"], ["mat", "rug", "bed"]


def scale(**pretrain) -> ScaleConfig:
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, ffn_mult=2.0, vocab_size=320, context=64)
    base = dict(lr=5e-3, max_steps=6, batch_size=8, micro_batch_size=2, seq_len=32, warmup_steps=2, log_every=1)
    sft = TrainConfig(lr=2e-3, max_steps=None, epochs=2.0, batch_size=4, micro_batch_size=2, seq_len=48,
                      warmup_steps=1, log_every=1, checkpoint_every=2)
    return ScaleConfig(model=model, pretrain=TrainConfig(**{**base, **pretrain}), sft=sft)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """A tokenizer, a flat token file of simple generated sentences, and a tokenized SFT set."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    sentences = [f"The {rng.choice(NOUNS)} {rng.choice(VERBS)} on the {rng.choice(PLACES)}." for _ in range(400)]
    tokenizer_dir = make_chat_tokenizer(root / "tokenizer", texts=sentences)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = tokenizer("<|endoftext|>".join(sentences))["input_ids"]
    np.save(root / "tokens.npy", np.asarray(ids, dtype=np.uint16))
    conversations = [CONVERSATION, CONVERSATION[1:3], [{"role": "user", "content": "Say cat."},
                                                        {"role": "assistant", "content": "cat"}]] * 4
    encoded = sft_data.tokenize_conversations(conversations, tokenizer, progress=False)
    io.write_parquet(root / "sft" / "sft.parquet",
                     pd.DataFrame({"input_ids": [i for i, _ in encoded], "labels": [lab for _, lab in encoded]}))
    return {"root": root, "tokenizer": tokenizer_dir, "tokens": root / "tokens.npy", "sft": root / "sft"}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_schedule_warms_up_then_decays_to_the_floor():
    tc = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=4)
    lrs = [train.lr_at(step, tc, 20) for step in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))


def test_batches_cover_each_epoch_once_in_a_seeded_order():
    first_epoch = [i for step in range(5) for i in train.batch_indices(step, 4, 20, seed=7)]
    assert sorted(first_epoch) == list(range(20))
    assert train.batch_indices(5, 4, 20, seed=7) != first_epoch[:4]  # epoch 2 is reshuffled
    assert train.batch_indices(3, 4, 20, seed=7) == train.batch_indices(3, 4, 20, seed=7)
    assert train.batch_indices(0, 4, 20, seed=8) != first_epoch[:4]


def test_loss_counts_only_assistant_tokens(corpus):
    data = train.SFTExamples(corpus["sft"] / "sft.parquet", seq_len=200)  # long enough to cut nothing
    model = build_model(scale().model, 0)
    pairs = [data[0], data[2]]  # different lengths: the shorter one is padded
    batch = train.collate(pairs, pad_id=1, device=torch.device("cpu"))
    assert "attention_mask" in batch
    summed = train.micro_batch_loss(model, batch, bf16=False)
    by_hand = 0.0
    for ids, labels in pairs:
        log_probs = torch.log_softmax(model(torch.from_numpy(ids)[None]).logits[0], dim=-1)
        targets = labels != sft_data.IGNORE_INDEX
        by_hand -= log_probs[torch.from_numpy(targets), torch.from_numpy(labels[targets])].sum()
    torch.testing.assert_close(summed, by_hand, rtol=1e-5, atol=1e-5)
    # The targets of the first conversation are exactly its assistant replies, each with its eos.
    tokenizer = AutoTokenizer.from_pretrained(corpus["tokenizer"])
    targets = data.labels[0][data.labels[0] != sft_data.IGNORE_INDEX]
    assert tokenizer.decode(targets) == "Blue.<|endoftext|>Red.<|endoftext|>"
    assert data.n_targets([0]) == targets.size
    assert train.SFTExamples(corpus["sft"] / "sft.parquet", seq_len=8).n_targets([0]) == 0  # cut before a reply


def test_pretraining_loss_falls_well_below_the_unigram_entropy(corpus, tmp_path):
    tokens = np.load(corpus["tokens"])
    p = np.bincount(tokens) / tokens.size
    unigram_entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    summary = train.pretrain(scale(max_steps=40, log_every=5), corpus["tokens"], corpus["tokenizer"],
                             tmp_path, seed=0)
    assert summary["steps"] == 40 and summary["tokens_seen"] == 40 * 8 * 32
    assert summary["final_loss"] < 0.8 * unigram_entropy
    log = pd.read_parquet(tmp_path / "loss.parquet")
    assert list(log.columns) == train.LOG_COLUMNS and log["step"].tolist() == list(range(5, 45, 5))
    assert (log["mfu"] > 0).all() and (log["tokens_per_s"] > 0).all()
    loaded = AutoTokenizer.from_pretrained(tmp_path / "model")  # the checkpoint carries its tokenizer
    assert loaded.eos_token == "<|endoftext|>"


def test_one_pass_when_max_steps_is_none(corpus, tmp_path):
    windows = train.TokenWindows(corpus["tokens"], 32, 320)
    summary = train.pretrain(scale(max_steps=None, log_every=50), corpus["tokens"], corpus["tokenizer"], tmp_path, 0)
    assert summary["steps"] == len(windows) // 8 and summary["data_epochs"] <= 1


class Crash(RuntimeError):
    pass


def crash_at_step(monkeypatch, step: int, calls_per_step: int, result=None):
    """Make the loss function crash (or return `result`) from the given 1-based step on."""
    real, calls = train.micro_batch_loss, {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > (step - 1) * calls_per_step:
            if result is None:
                raise Crash("simulated crash")
            return real(*args, **kwargs) * 0 + result
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "micro_batch_loss", patched)


def test_pretraining_resumes_to_the_identical_result(corpus, tmp_path, monkeypatch):
    config = scale(checkpoint_every=3)
    train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "straight", seed=0)
    with monkeypatch.context() as patch:
        crash_at_step(patch, 5, calls_per_step=4)
        with pytest.raises(Crash):
            train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "broken", seed=0)
    assert torch.load(tmp_path / "broken/checkpoint/trainer.pt", weights_only=True)["step"] == 3
    summary = train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "broken", seed=0)
    assert summary["steps"] == 6
    straight, resumed = weights(tmp_path / "straight/model"), weights(tmp_path / "broken/model")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    logs = [pd.read_parquet(tmp_path / run / "loss.parquet") for run in ("straight", "broken")]
    assert logs[0]["loss"].tolist() == logs[1]["loss"].tolist()


def test_sft_resumes_to_the_identical_result(corpus, tmp_path, monkeypatch):
    config = scale(max_steps=3)
    train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "pt", seed=0)
    args = (config, tmp_path / "pt/model", corpus["sft"])
    straight = train.sft(*args, tmp_path / "straight", seed=0)
    assert straight["steps"] == 6  # 12 examples x 2 epochs / batch 4
    with monkeypatch.context() as patch:
        crash_at_step(patch, 4, calls_per_step=2)
        with pytest.raises(Crash):
            train.sft(*args, tmp_path / "broken", seed=0)
    train.sft(*args, tmp_path / "broken", seed=0)
    a, b = weights(tmp_path / "straight/model"), weights(tmp_path / "broken/model")
    assert all(torch.equal(a[name], b[name]) for name in a)
    log = pd.read_parquet(tmp_path / "straight/loss.parquet")
    assert log["loss"].iloc[-2:].mean() < log["loss"].iloc[:2].mean()  # SFT loss on replies falls


def test_resuming_with_another_config_is_refused(corpus, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        crash_at_step(patch, 3, calls_per_step=4)
        with pytest.raises(Crash):
            train.pretrain(scale(checkpoint_every=2), corpus["tokens"], corpus["tokenizer"], tmp_path, seed=0)
    with pytest.raises(ValueError, match="checkpoint of a different run"):
        train.pretrain(scale(checkpoint_every=2, lr=1e-3), corpus["tokens"], corpus["tokenizer"], tmp_path, seed=0)


def test_a_finished_run_keeps_its_model_not_its_optimizer_state(corpus, tmp_path):
    train.pretrain(scale(max_steps=2), corpus["tokens"], corpus["tokenizer"], tmp_path, seed=0)
    assert (tmp_path / "model/model.safetensors").exists() and not (tmp_path / "checkpoint").exists()


@pytest.mark.parametrize("bad_loss", [float("nan"), 1e4])
def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch,
                                                                                bad_loss):
    crash_at_step(monkeypatch, 5, calls_per_step=4, result=bad_loss)
    with pytest.raises(train.TrainingDiverged, match=r"diverged at step 5.*step 4\).*Lower the learning rate"):
        train.pretrain(scale(checkpoint_every=2), corpus["tokens"], corpus["tokenizer"], tmp_path, seed=0)
    state = torch.load(tmp_path / "checkpoint/trainer.pt", weights_only=True)
    assert state["step"] == 4 and all(math.isfinite(row["loss"]) for row in state["log"])
    assert (tmp_path / "checkpoint/model/model.safetensors").exists() and not (tmp_path / "model").exists()


def test_bad_shapes_are_refused_with_the_fix(corpus, tmp_path):
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size"):
        train.pretrain(scale(batch_size=6, micro_batch_size=4), corpus["tokens"], corpus["tokenizer"], tmp_path, 0)
    small_vocab = scale()
    small_vocab.model.vocab_size = 100
    with pytest.raises(ValueError, match="set model.vocab_size >= 300"):
        train.pretrain(small_vocab, corpus["tokens"], corpus["tokenizer"], tmp_path, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, corpus: dict, out: Path, shard: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    if shard:
        train.FSDP_MIN_PARAMS = 0  # exercise the FSDP2 path on a tiny model
        wrap = train.wrap_for_parallel

        def wrap_and_check(model, rt, *args):
            wrapped = wrap(model, rt, *args)
            assert type(wrapped).__name__.startswith("FSDP"), type(wrapped)
            return wrapped

        train.wrap_for_parallel = wrap_and_check
    train.pretrain(scale(), corpus["tokens"], corpus["tokenizer"], out, seed=0)


@pytest.mark.parametrize("shard", [False, True], ids=["ddp", "fsdp2"])
def test_two_processes_match_one_on_the_same_global_batch(corpus, tmp_path, shard):
    single = train.pretrain(scale(), corpus["tokens"], corpus["tokenizer"], tmp_path / "single", seed=0)
    # fork: the ranks start with everything imported, in a fraction of spawn's time (CPU only, no CUDA state)
    torch.multiprocessing.start_processes(_rank_main, args=(2, _free_port(), corpus, tmp_path / "ddp", shard),
                                          nprocs=2, start_method="fork")
    one, two = weights(tmp_path / "single/model"), weights(tmp_path / "ddp/model")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-5)
    logs = [pd.read_parquet(tmp_path / run / "loss.parquet")["loss"] for run in ("single", "ddp")]
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-5)
    assert single["steps"] == 6
