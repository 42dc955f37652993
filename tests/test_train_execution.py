"""Tests of the training loop's execution switches (the GPU path): each leaves the numbers as they were.

Reading losses only at log rows, activation checkpointing and the chunked loss run here on the CPU; the
compiled and CUDA paths are `gpu`-marked and skip without a CUDA device.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import corpus, crash_at_step, scale, weights  # noqa: F401 - corpus is a fixture

from magiclib import precision, train
from magiclib.config import TrainConfig
from magiclib.model import build_model


def run(corpus, out, **pretrain) -> tuple[list[float], dict]:  # noqa: F811
    train.pretrain(scale(**pretrain), corpus["tokens"], corpus["tokenizer"], out, seed=0)
    return pd.read_parquet(out / "loss.parquet")["loss"].tolist(), weights(out / "model")


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_reading_losses_only_at_log_rows_changes_no_number(corpus, tmp_path, monkeypatch):  # noqa: F811
    losses, final = run(corpus, tmp_path / "each", log_every=3)
    monkeypatch.setattr(train, "reads_deferred", lambda device: True)  # the GPU's way, on the CPU
    deferred_losses, deferred_final = run(corpus, tmp_path / "deferred", log_every=3)
    assert deferred_losses == losses and len(losses) == 2
    assert_same(deferred_final, final)


def test_deferred_reads_still_stop_a_diverged_run_at_its_step(corpus, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(train, "reads_deferred", lambda device: True)
    crash_at_step(monkeypatch, 5, calls_per_step=4, result=float("nan"))
    with pytest.raises(train.TrainingDiverged, match=r"diverged at step 5"):
        run(corpus, tmp_path, log_every=3)


def test_activation_checkpointing_changes_no_number(corpus, tmp_path):  # noqa: F811
    losses, final = run(corpus, tmp_path / "plain", max_steps=3)
    recomputed_losses, recomputed_final = run(corpus, tmp_path / "ckpt", max_steps=3, activation_checkpointing=True)
    assert recomputed_losses == losses
    assert_same(recomputed_final, final)


def test_chunked_loss_matches_the_whole_loss_and_its_gradients(corpus):  # noqa: F811
    data = train.SFTExamples(corpus["sft"] / "sft.parquet", seq_len=200)
    batch = train.collate([data[0], data[2]], pad_id=1, device=torch.device("cpu"))  # padded: ignored targets
    results = []
    for chunk in (None, 7):  # 7 does not divide the token count: a short last chunk
        model = build_model(scale().model, 0)
        loss = train.micro_batch_loss(model, batch, bf16=False, loss_chunk=chunk)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (whole, whole_grads), (chunked, chunked_grads) = results
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    for name, grad in whole_grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_execution_switches_hash_only_when_set():
    plain = precision.hashed(TrainConfig(), "fp32")
    assert not {"compile", "activation_checkpointing", "loss_chunk"} & plain.keys()  # hashes as before
    switched = precision.hashed(TrainConfig(compile=True, loss_chunk=4096), "bf16")
    assert switched["compile"] is True and switched["loss_chunk"] == 4096
    assert "activation_checkpointing" not in switched


def test_a_chunked_loss_across_ranks_is_refused_with_the_fix(corpus, tmp_path):  # noqa: F811
    config = scale(loss_chunk=64)
    rt = train.Runtime(rank=0, world=2, device=torch.device("cpu"), owns_group=False)
    data = train.TokenWindows(corpus["tokens"], 32, 320)
    with pytest.raises(ValueError, match="loss_chunk to null"):
        train.run_training("pretrain", build_model(config.model, 0), data, None, config.model, config.pretrain,
                           2, tmp_path, 0, rt, None)


def test_the_model_uses_scaled_dot_product_attention():
    assert build_model(scale().model, 0).config._attn_implementation == "sdpa"


@pytest.mark.gpu
def test_compiled_bf16_training_on_cuda_tracks_the_eager_run(corpus, tmp_path):  # noqa: F811
    eager, _ = run(corpus, tmp_path / "eager", precision="bf16", max_steps=4, log_every=1)
    compiled, _ = run(corpus, tmp_path / "compiled", precision="bf16", max_steps=4, log_every=1, compile=True,
                      loss_chunk=100)
    np.testing.assert_allclose(compiled, eager, rtol=2e-2)
