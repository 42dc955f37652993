"""The study runner: the smoke grid end to end through papermill, resuming, the scores contract, Slurm."""

import io
import subprocess
import sys

import pandas as pd
import pytest

from magiclib import results, slurm, steps
from magiclib.config import load_config

MAGIC = [sys.executable, "-m", "magiclib.cli"]
SCORES_COLUMNS = ["mixture", "web_source", "proportions", "scale", "stage", "benchmark", "category", "n", "acc",
                  "acc_norm", "confidence", "gold_prob", "ece", "brier"]

pytestmark = pytest.mark.slow


def test_smoke_study_completes_the_full_grid(smoke_study):
    cfg = load_config("smoke")
    assert all(steps.is_done(cfg, smoke_study, st) for st in steps.plan(cfg))
    scores = pd.read_parquet(smoke_study / "tables" / "scores.parquet")
    assert len(scores) == 9 * 2 * 2 * 20
    assert scores.groupby(["scale", "stage"]).mixture.nunique().eq(9).all()
    assert scores.benchmark.nunique() == 20 and scores.category.nunique() == 4


def test_scores_command_prints_the_contract(smoke_study):
    out = subprocess.run([*MAGIC, "scores", "--preset", "smoke", "--results", str(smoke_study)],
                         capture_output=True, text=True, check=True).stdout
    table = pd.read_csv(io.StringIO(out))
    assert set(SCORES_COLUMNS) <= set(table.columns)
    assert len(table) == 9 * 2 * 2 * 20
    assert table[["acc", "acc_norm", "confidence"]].notna().all().all()


def test_a_second_run_recomputes_nothing(smoke_study):
    records = sorted((smoke_study / "runs").glob("*/*/run.json"))
    before = [p.stat().st_mtime_ns for p in records]
    out = subprocess.run([*MAGIC, "study", "--preset", "smoke", "--results", str(smoke_study)],
                         capture_output=True, text=True, check=True)
    assert [p.stat().st_mtime_ns for p in records] == before
    assert "FAILED" not in out.stderr


def test_slurm_dry_run_writes_arrays_with_the_presets_resources(tmp_path, capsys):
    cfg = load_config("paper")
    config_path = results.write_config(cfg, tmp_path)
    assert slurm.submit(cfg, tmp_path, config_path, dry_run=True) == 0
    text = (tmp_path / "slurm" / "dry_run.sh").read_text()
    arrays = slurm.arrays(cfg, tmp_path, config_path)
    assert len(arrays) == 2 * 4 and all(len(a["commands"]) == 9 for a in arrays)
    assert text.count("#SBATCH --array=0-8%9") == 8  # 9 tasks, at most slurm.max_parallel (64) at once
    assert "#SBATCH --gpus-per-node=8" in text and "#SBATCH --time=2880" in text
    assert "#SBATCH --mem=480GB" in text
    pretrain = next(a for a in arrays if a["name"] == "pretrain-1B")
    assert pretrain["commands"][0][:3] == ["torchrun", "--standalone", "--nproc_per_node=8"]
    evaluate = next(a for a in arrays if a["name"] == "evaluate-SFT-1B")
    assert evaluate["gpus"] == 1 and evaluate["after"] == "sft-1B" and "--notebook" in evaluate["commands"][0]
    assert "#SBATCH --dependency='aftercorr:<pretrain-1B>'" in text  # the job id is known at submission


def test_submitit_local_executor_runs_the_same_path(tmp_path):
    cfg = load_config("smoke", ["mixtures=[V2-P1]"])
    cfg.scales = {"tiny": cfg.scales["tiny"]}  # one run of each kind is enough here
    config_path = results.write_config(cfg, tmp_path)
    assert slurm.submit(cfg, tmp_path, config_path, cluster="local") == 0
    for st in steps.plan(cfg):  # each run is done and keeps its executed papermill notebook as its record
        assert steps.is_done(cfg, tmp_path, st)
        assert (steps.step_dir(cfg, tmp_path, st) / "run.ipynb").exists()
