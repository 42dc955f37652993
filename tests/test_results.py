"""The results folder: tables rebuilt from the finished runs, never served older than the runs they hold."""

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from magiclib import io, results, steps
from magiclib.config import load_config
from magiclib.steps import Step

OVERRIDES = ["mixtures=[V1-P0, V2-P1]"]


def _finish_evaluate(cfg, root: Path, mixture: str, stage: str, accuracy: float) -> Path:
    """A finished evaluate folder as the runner leaves it (its scores, items and run.json)."""
    step = Step("evaluate", mixture, "tiny", 0, stage)
    folder = steps.step_dir(cfg, root, step)
    folder.mkdir(parents=True)
    io.write_parquet(folder / "scores.parquet", pd.DataFrame({"benchmark": ["copa"], "accuracy": [accuracy]}))
    io.write_parquet(folder / "items.parquet", pd.DataFrame({"benchmark": ["copa"], "item": ["0"]}))
    io.finish_run(folder, kind="evaluate", config={}, config_hash=steps.step_hash(cfg, step), seed=0,
                  started=time.time())
    return folder


@pytest.fixture
def study(tmp_path):
    cfg = load_config("smoke", OVERRIDES)
    results.write_config(cfg, tmp_path)
    return cfg, tmp_path


def test_scores_are_rebuilt_when_a_run_finishes_after_the_table(study):
    cfg, root = study
    _finish_evaluate(cfg, root, "V1-P0", "PT", 0.5)
    assert results.scores_table(cfg, root)["accuracy"].tolist() == [0.5]  # mid-study: what is finished so far
    written = (root / results.TABLES_DIR / "scores.parquet").stat().st_mtime_ns
    assert results.scores_table(cfg, root)["accuracy"].tolist() == [0.5]
    assert (root / results.TABLES_DIR / "scores.parquet").stat().st_mtime_ns == written  # current: read, not rebuilt
    _finish_evaluate(cfg, root, "V2-P1", "SFT", 0.75)
    assert sorted(results.scores_table(cfg, root)["accuracy"]) == [0.5, 0.75]
    assert results.tables_current(cfg, root)


def test_a_run_redone_in_place_or_removed_rebuilds_the_tables(study):
    cfg, root = study
    folder = _finish_evaluate(cfg, root, "V1-P0", "PT", 0.5)
    _finish_evaluate(cfg, root, "V2-P1", "PT", 0.25)
    results.scores_table(cfg, root)
    io.write_parquet(folder / "scores.parquet", pd.DataFrame({"benchmark": ["copa"], "accuracy": [0.625]}))
    later = time.time() + 5  # the redone run's record is written after the tables
    os.utime(folder / io.RUN_RECORD, (later, later))
    assert not results.tables_current(cfg, root)
    assert sorted(results.scores_table(cfg, root)["accuracy"]) == [0.25, 0.625]
    (folder / io.RUN_RECORD).unlink()  # no longer finished
    assert results.scores_table(cfg, root)["accuracy"].tolist() == [0.25]


def test_another_config_gets_its_own_scores_and_leaves_the_studys_tables(study):
    cfg, root = study
    _finish_evaluate(cfg, root, "V1-P0", "PT", 0.5)
    _finish_evaluate(cfg, root, "V2-P1", "PT", 0.25)
    results.scores_table(cfg, root)
    one = load_config("smoke", ["mixtures=[V1-P0]"])
    assert results.scores_table(one, root)["accuracy"].tolist() == [0.5]
    assert sorted(results.table(root, "scores")["accuracy"]) == [0.25, 0.5]


def test_eval_items_summary_counts_what_is_scored(study):
    cfg, root = study
    from magiclib.benchmarks import Item, write_items

    folder = steps.eval_items_dir(cfg, root)
    write_items(folder / steps.EVAL_ITEMS_FILE, [
        Item("rte", "0", "c", ["a", "b"], 0), Item("copa", "3", "c", ["a", "b"], 1),
        Item("copa", "9", "c", ["a", "b"], 0), Item("cb", "1", "c", ["a", "b", "c"], 2)])
    summary = results.eval_items(root)
    assert summary.to_dict("list") == {"benchmark": ["copa", "rte", "cb"], "category": ["commonsense", "nli", "nli"],
                                       "items scored": [2, 1, 1], "choices": ["2", "2", "3"]}
