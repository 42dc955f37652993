"""The slurm executor on a real one-node Slurm cluster (scripts/slurm_cluster.sh), started and stopped here.

A tiny grid (2 mixtures x 1 scale) goes through `magic study --executor slurm --wait`: the scores table is
complete, a rerun submits nothing, and in a second study one pretraining task is requeued (SIGUSR2, as at a
time limit) and another cancelled (scancel) mid-run: the first resumes by itself, the second when the study is
run again, and the final scores equal the uninterrupted study's. Skipped, with the reason, when the daemons
cannot start (slurm-wlm and munge not installed, not root). Run with `make test-slurm`.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from magiclib import paths

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = paths.REPO_ROOT / "scripts" / "slurm_cluster.sh"
MAGIC = [sys.executable, "-m", "magiclib.cli"]
MIXTURES = ["V1-P0", "V2-P1"]
STEPS = 1000  # tiny-model pretraining long enough (tens of seconds) to be interrupted in the middle


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster; the environment that points Slurm's commands at it."""
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "MAGIC_SLURM_DIR": str(folder), "MAGIC_SLURM_PORT": "6917",
           "SLURM_CONF": str(folder / "slurm.conf"), "MAGIC_SLURM_POLL_S": "2"}
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.skip("slurm-wlm and munge are not installed (`make slurm-install`)")
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
    if started.returncode:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True)
        pytest.skip(f"the Slurm daemons did not start: {started.stderr.strip()}")
    try:
        yield env
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory) -> Path:
    """The smoke preset cut to one scale and two mixtures, with a longer pretraining."""
    raw = yaml.safe_load((paths.REPO_ROOT / "configs" / "smoke.yaml").read_text())
    raw["scales"] = {"tiny": raw["scales"]["tiny"]}
    raw["scales"]["tiny"]["pretrain"]["max_steps"] = STEPS
    raw["scales"]["tiny"]["pretrain"]["log_every"] = 100
    raw["mixtures"] = MIXTURES
    path = tmp_path_factory.mktemp("preset") / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def magic(env, *args, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run([*MAGIC, *args], env=env, capture_output=True, text=True, timeout=1200)
    if check and out.returncode:
        raise AssertionError(f"magic {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def queue(env) -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout.split()


def pretrain_jobs(results: Path) -> dict[str, str]:
    """mixture -> job id of its pretraining task, from the study's record of what it submitted."""
    jobs = json.loads((results / "slurm" / "jobs.json").read_text())
    return {key.split("/")[-1].split("_")[0]: entry["job"] for key, entry in jobs.items()
            if key.startswith("runs/pretrain/")}


def wait_until_training(results: Path, mixture: str, timeout: float = 600) -> None:
    """Return once a pretraining task's loop is running (its progress bar is in the task's log)."""
    book, deadline = results / "slurm" / "jobs.json", time.time() + timeout
    while time.time() < deadline:
        logs = [Path(e["log"]) for k, e in json.loads(book.read_text()).items()
                if k.startswith(f"runs/pretrain/{mixture}_")] if book.exists() else []
        if logs and logs[0].exists() and "step/s" in logs[0].read_text(errors="replace").split("pretrain ")[-1]:
            return
        time.sleep(1)
    raise AssertionError(f"{mixture}'s pretraining did not start within {timeout} s (see {results / 'slurm'})")


def release_when_requeued(env, job: str, timeout: float = 120) -> None:
    """Slurm holds a requeued job for two minutes (BeginTime); start it at once instead."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T|%r"], env=env, capture_output=True,
                               text=True).stdout.strip()
        if state == "PENDING|BeginTime":
            subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env, check=True)
            return
        time.sleep(1)
    raise AssertionError(f"job {job} was not requeued within {timeout} s (state {state!r})")


@pytest.fixture(scope="module")
def straight(cluster, tiny_preset, tmp_path_factory) -> Path:
    """The tiny study run through Slurm without interruption."""
    results = tmp_path_factory.mktemp("straight")
    magic(cluster, "study", "--preset", str(tiny_preset), "--results", str(results), "--executor", "slurm", "--wait")
    return results


def test_the_study_runs_through_slurm_to_a_complete_scores_table(straight):
    scores = pd.read_parquet(straight / "tables" / "scores.parquet")
    assert len(scores) == len(MIXTURES) * 2 * 20  # 2 mixtures x PT/SFT x 20 benchmarks
    assert set(scores.mixture) == set(MIXTURES) and scores.acc.notna().all()


def test_a_rerun_submits_nothing(cluster, tiny_preset, straight):
    before = (straight / "slurm" / "jobs.json").read_text()
    out = magic(cluster, "study", "--preset", str(tiny_preset), "--results", str(straight), "--executor", "slurm")
    assert "nothing to submit" in out.stdout
    assert (straight / "slurm" / "jobs.json").read_text() == before and queue(cluster) == []
    status = magic(cluster, "status", "--preset", str(tiny_preset), "--results", str(straight)).stdout
    assert "FAILED" not in status and "done" in status


def test_requeued_and_cancelled_tasks_resume_to_the_same_scores(cluster, tiny_preset, straight, tmp_path):
    results = tmp_path / "interrupted"
    shutil.copytree(straight / "data", results / "data")  # the same data steps: skip rebuilding them
    args = ["--preset", str(tiny_preset), "--results", str(results)]
    first = subprocess.Popen([*MAGIC, "study", *args, "--executor", "slurm", "--wait"], env=cluster,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    requeued, cancelled = MIXTURES
    try:
        for mixture in MIXTURES:
            wait_until_training(results, mixture)
        jobs = pretrain_jobs(results)
        # As at a time limit: Slurm's warning signal; the task checkpoints, requeues itself and resumes.
        subprocess.run(["scancel", "--signal=USR2", jobs[requeued]], env=cluster, check=True)
        subprocess.run(["scancel", jobs[cancelled]], env=cluster, check=True)
        release_when_requeued(cluster, jobs[requeued])
        out, err = first.communicate(timeout=1200)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1, out + err
    # The cancelled task stopped at a checkpoint; its dependants were cancelled, not left pending.
    partial = next((results / "runs" / "pretrain").glob(f"{cancelled}_*.partial"))
    import torch

    stopped_at = torch.load(partial / "checkpoint" / "trainer.pt", weights_only=True)["step"]
    assert 0 < stopped_at < STEPS
    status = magic(cluster, "status", *args).stdout
    assert f"FAILED pretrain {cancelled}" in status and "log:" in status
    assert "stopped by SIGTERM" in status or "CANCELLED" in status
    assert queue(cluster) == []
    # The requeued one finished by itself, through a second start of the same job.
    err = Path(next(e["log"] for k, e in json.loads((results / "slurm" / "jobs.json").read_text()).items()
                    if k.startswith(f"runs/pretrain/{requeued}_")))
    log = err.read_text(errors="replace") + err.with_name(err.name.replace(".err", ".out")).read_text()
    assert "stopped by SIGUSR2" in log and "Requeued job" in log
    assert (next((results / "runs" / "pretrain").glob(f"{requeued}_*-*")) / "run.json").exists()
    # Run again: the cancelled task resumes from its checkpoint, and the study ends as the straight one did.
    magic(cluster, "study", *args, "--executor", "slurm", "--wait")
    columns = ["mixture", "scale", "stage", "benchmark", "acc", "acc_norm", "confidence", "gold_prob"]
    resumed, reference = (pd.read_parquet(r / "tables" / "scores.parquet")[columns]
                          .sort_values(columns[:4]).reset_index(drop=True) for r in (results, straight))
    pd.testing.assert_frame_equal(resumed, reference)
