"""The study runner: the smoke grid end to end through papermill, resuming, the scores contract (Slurm: test_slurm*.py)."""

import io
import subprocess
import sys

import pandas as pd
import pytest

from magiclib import steps
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
