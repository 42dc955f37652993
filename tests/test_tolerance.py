"""The tolerance table between two results folders: zero for identical studies, the planted difference otherwise."""

import pytest

from magiclib import tolerance
from magiclib.analysis.synthetic import make_scores
from magiclib.errors import MissingFile


def test_identical_studies_differ_by_nothing():
    scores = make_scores(seed=3)
    table = tolerance.tolerance_table(scores, scores.copy())
    assert list(table.columns) == tolerance.COLUMNS
    assert (table["max_abs_diff"] == 0).all() and (table["compared"] > 0).all()


def test_the_largest_difference_is_found_and_located():
    scores = make_scores(seed=3)
    moved = scores.copy()
    row = moved.index[5]
    moved.loc[row, "accuracy"] += 0.04
    moved.loc[moved.index[7], "confidence"] -= 0.01
    table = tolerance.tolerance_table(scores, moved).set_index("quantity")
    accuracy = table.loc["accuracy (per run and benchmark)"]
    assert accuracy["max_abs_diff"] == pytest.approx(0.04)
    assert accuracy["where_max"] == " ".join(str(scores.loc[row, k]) for k in tolerance.RUN_KEYS)
    assert table.loc["confidence (per run and benchmark)", "max_abs_diff"] == pytest.approx(0.01)
    headline = table.loc["mean cross-stage r (per scale, metric, category)"]
    assert 0 < headline["max_abs_diff"] < 1


def test_missing_tables_name_the_fix(tmp_path):
    with pytest.raises(MissingFile, match="magic study"):
        tolerance.tolerance_table(tmp_path, tmp_path)


def _study_folder(path, scores, precision):
    import yaml

    (path / "tables").mkdir(parents=True)
    scores.to_parquet(path / "tables" / "scores.parquet")
    stages = {"pretrain": {"precision": precision}, "sft": {"precision": precision}}
    (path / "config.yaml").write_text(yaml.safe_dump({"scales": {"s": stages}, "eval": {"precision": precision}}))
    return path


def test_chapter_facts_with_and_without_a_second_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(tolerance.COMPARE_ENV, raising=False)
    scores = make_scores(seed=3)
    first = _study_folder(tmp_path / "mini", scores, "fp32")
    assert tolerance.second_folder(first) is None
    assert "not measured" in tolerance.chapter_facts(first, None)["tolerance_summary"]
    moved = scores.assign(accuracy=scores["accuracy"] + 0.002)
    other = _study_folder(tmp_path / "mini-bf16", moved, "bf16")
    assert tolerance.second_folder(first) == other
    text = tolerance.chapter_facts(first, other)["tolerance_summary"]
    assert "training fp32, scoring fp32" in text and "training bf16, scoring bf16" in text
    assert "accuracy is 0.002" in text
