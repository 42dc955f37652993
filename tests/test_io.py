"""Crash-safe files: a failed write keeps the old file and leaves no temporary; run records mark completion."""

import errno
import os
import time

import pandas as pd
import pytest

from magiclib import io


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "note.txt"
    io.write_text(path, "old")
    io.write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(path.parent) == ["note.txt"]


def test_disk_full_keeps_the_old_text_and_says_where_and_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "note.txt"
    io.write_text(path, "old")
    monkeypatch.setattr(os, "fsync", _disk_full)  # the new text is in the temporary, not yet on disk
    with pytest.raises(OSError, match=f"disk full .*while writing {path}; its old content, if any, is kept. "
                                      "Free some space or point --results") as err:
        io.write_text(path, "new text")
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["note.txt"]


def test_disk_full_halfway_through_a_parquet_keeps_the_old_table(tmp_path, monkeypatch):
    path = tmp_path / "scores.parquet"
    io.write_parquet(path, pd.DataFrame({"x": [1, 2]}))

    def half_written(frame, target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"PAR1 half")
        _disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(OSError, match="disk full"):
        io.write_parquet(path, pd.DataFrame({"x": [3]}))
    assert pd.read_parquet(path)["x"].tolist() == [1, 2] and os.listdir(tmp_path) == ["scores.parquet"]


def test_other_os_errors_pass_through_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(PermissionError(errno.EACCES, "denied")))
    with pytest.raises(PermissionError, match="denied"):
        io.write_text(tmp_path / "note.txt", "x")
    assert os.listdir(tmp_path) == []


def test_a_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "checkpoint"
    for content in ("first", "second"):
        with io.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "state.txt").write_text(content)
    assert (target / "state.txt").read_text() == "second" and os.listdir(tmp_path) == ["checkpoint"]


def test_remove_temporaries_takes_only_what_a_killed_writer_left(tmp_path):
    keep = [tmp_path / "model" / "model.safetensors", tmp_path / ".hidden", tmp_path / "loss.parquet"]
    stale = [tmp_path / f".loss.parquet{io.TMP_MARK}11-abc123", tmp_path / "pools" / f".web.parquet{io.TMP_MARK}12-def"]
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    folder = tmp_path / f".checkpoint{io.TMP_MARK}13-0a1b2c"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / f".inner{io.TMP_MARK}13-ffffff").write_text("x")
    assert set(io.remove_temporaries(tmp_path)) >= {*stale, folder}
    assert all(p.exists() for p in keep) and not any(p.exists() for p in [*stale, folder])
    assert io.remove_temporaries(tmp_path / "absent") == []


def test_a_folder_is_finished_only_by_a_complete_record_of_its_config(tmp_path):
    assert not io.is_finished(tmp_path)
    (tmp_path / io.RUN_RECORD).write_text('{"config_hash": "abc", "results_for')  # killed mid-write by hand
    assert not io.is_finished(tmp_path)
    record = io.finish_run(tmp_path, kind="test", config={"a": 1}, config_hash="abc", seed=0, started=time.time())
    assert record["results_format"] == io.RESULTS_FORMAT and "torch" in record["versions"]
    assert io.is_finished(tmp_path) and io.is_finished(tmp_path, "abc") and not io.is_finished(tmp_path, "abd")


def test_a_record_from_another_results_format_is_refused_with_the_fix(tmp_path):
    io.write_json(tmp_path / io.RUN_RECORD, {"config_hash": "abc", "results_format": io.RESULTS_FORMAT + 1})
    with pytest.raises(io.IncompatibleResults, match=r"incompatible magiclib .*move that results folder away"):
        io.is_finished(tmp_path, "abc")
