"""A stop signal (Slurm's time-limit warning SIGUSR2, or SIGTERM) checkpoints the loop at the end of its step,
and the resumed run ends with exactly the model and the loss log of an unbroken one."""

import os
import signal

import pandas as pd
import pytest
import torch
from test_train import corpus, scale, weights  # noqa: F401 - corpus is a fixture

from magiclib import train


def signal_during_step(monkeypatch, step: int, calls_per_step: int, signum: int) -> None:
    """Deliver `signum` to this process in the middle of the given 1-based step (during its first micro-batch)."""
    real, calls = train.micro_batch_loss, {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == (step - 1) * calls_per_step + 1:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "micro_batch_loss", patched)


@pytest.mark.parametrize("signum", [signal.SIGUSR2, signal.SIGTERM])
def test_a_stop_signal_checkpoints_mid_interval_and_resumes_identically(corpus, tmp_path, monkeypatch, signum):  # noqa: F811
    config = scale(log_every=4)  # 6 steps logged at 4 and 6: the signal in step 3 falls inside an interval
    train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "straight", seed=0)
    before = signal.getsignal(signum)
    with monkeypatch.context() as patch:
        signal_during_step(patch, 3, calls_per_step=4, signum=signum)
        with pytest.raises(train.TrainingInterrupted, match=f"{signal.Signals(signum).name} after step 3 of 6"):
            train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "stopped", seed=0)
    assert signal.getsignal(signum) == before  # the loop gives the signal back once it stops
    assert torch.load(tmp_path / "stopped/checkpoint/trainer.pt", weights_only=True)["step"] == 3
    train.pretrain(config, corpus["tokens"], corpus["tokenizer"], tmp_path / "stopped", seed=0)
    straight, resumed = weights(tmp_path / "straight/model"), weights(tmp_path / "stopped/model")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    logs = [pd.read_parquet(tmp_path / run / "loss.parquet") for run in ("straight", "stopped")]
    assert logs[0][["step", "tokens", "loss"]].equals(logs[1][["step", "tokens", "loss"]])
