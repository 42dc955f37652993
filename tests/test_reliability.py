"""Reliability: a study killed anywhere resumes to the same numbers, seeds are the only source of variation,
and every bad input ends in a message that names the problem and the fix.

The slow tests share one reduced smoke study (2 mixtures, 1 scale, 5 benchmarks) run once without
interruption; the kill test runs the same study in a fresh folder, SIGKILLing it in each phase.
Bad inputs already covered elsewhere: unknown preset, YAML key, proportions, mixture and pool
(test_config.py, test_data_sources.py, test_data_mixtures.py), benchmark schema at the loader
(test_benchmarks.py), divergence inside the loop (test_train.py), disk full (test_io.py).
"""

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from magiclib import analysis, cli, io, paths, runner, steps
from magiclib.config import CONFIGS_DIR, load_config
from magiclib.steps import Step

BENCHMARKS = ["copa", "piqa", "arc_easy", "rte", "sst2"]  # one or two per category keep scoring short
# Stands in for `magic` and stops where the test will kill it: after a mixture's shards are written, after
# a pretraining run's mid-way checkpoint, inside an evaluate step's and the tables' parquet writes.
DRIVER = """
import os, sys, time
import pandas as pd
from magiclib import cli, data, train

phase, marker = os.environ["KILL_AT"], os.environ["KILL_MARKER"]
calls = {}

def stop_here(at, nth):
    calls[at] = calls.get(at, 0) + 1
    if at == phase and calls[at] == nth:
        open(marker, "w").close()
        time.sleep(3600)  # until SIGKILL

def wrap(owner, name, hook):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        hook(*args, **kwargs)
        return out
    setattr(owner, name, wrapped)

wrap(data, "build_mixture", lambda *a, **k: stop_here("data", 1))
wrap(train, "save_checkpoint", lambda model, opt, state, *a: state["fingerprint"]["stage"] == "pretrain"
     and stop_here("train", 2))

def in_parquet(frame, path, *a, **k):
    name = os.path.basename(path)
    if name.startswith(".items.parquet.tmp-"):
        stop_here("score", 2)
    elif name.startswith(".scores.parquet.tmp-") and os.path.basename(os.path.dirname(path)) == "tables":
        stop_here("tables", 1)

wrap(pd.DataFrame, "to_parquet", in_parquet)
sys.exit(cli.main(sys.argv[1:]))
"""


def _env(**extra) -> dict:
    # One torch thread in every run: thread count changes float summation order, and the cores are shared.
    return {**os.environ, "MAGIC_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **extra}


def _study(config: Path, results: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "magiclib.cli", "study", "--preset", str(config), "--results",
                           str(results), "--executor", "inline", *overrides],
                          capture_output=True, text=True, env=_env())


def _records(results: Path) -> dict[Path, int]:
    """Finished folders' run.json and their mtimes."""
    return {p: p.stat().st_mtime_ns for p in results.rglob(io.RUN_RECORD) if ".partial" not in str(p)}


def _temporaries(results: Path) -> list[Path]:
    return list(results.rglob(f".*{io.TMP_MARK}*"))


@pytest.fixture(scope="module")
def reduced(tmp_path_factory) -> Path:
    """The smoke preset cut to 2 mixtures, its smaller scale and 5 benchmarks, with a mid-run checkpoint."""
    raw = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
    raw["scales"] = {"tiny": raw["scales"]["tiny"]}
    raw["scales"]["tiny"]["pretrain"]["checkpoint_every"] = 4
    raw.update(name="reduced", mixtures=["V1-P0", "V2-P1"])
    raw["eval"]["benchmarks"] = BENCHMARKS
    path = tmp_path_factory.mktemp("config") / "reduced.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def baseline(reduced, tmp_path_factory):
    """The reduced study run once, uninterrupted; its seed-0 tables as they were (later tests add seeds)."""
    results = tmp_path_factory.mktemp("baseline") / "results"
    done = _study(reduced, results)
    assert done.returncode == 0, done.stderr[-3000:]
    tables = {name: pd.read_parquet(results / "tables" / f"{name}.parquet") for name in ("scores", "items")}
    return results, tables


# --- kill and resume ------------------------------------------------------------------------------


def _kill_at(phase: str, config: Path, results: Path, log: Path) -> None:
    marker = results.parent / f"reached-{phase}"
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, "study", "--preset", str(config), "--results",
                                 str(results), "--executor", "inline"],
                                stdout=out, stderr=subprocess.STDOUT, env=_env(KILL_AT=phase, KILL_MARKER=str(marker)))
    deadline = time.time() + 600
    while not marker.exists():
        assert proc.poll() is None, f"the study ended before reaching {phase}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"{phase} not reached in 10 minutes"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


@pytest.mark.slow
def test_a_study_killed_in_every_phase_resumes_to_identical_results(reduced, baseline, tmp_path):
    results, log = tmp_path / "results", tmp_path / "study.log"
    finished_at_kill = {}
    for phase in ("data", "train", "score", "tables"):
        _kill_at(phase, reduced, results, log)
        finished_at_kill[phase] = _records(results)
        partial = {
            "data": list(results.glob("data/mixtures/*.partial/tokens/*.npy")),  # shards written, no run.json
            "train": list(results.glob("runs/pretrain/*.partial/checkpoint/trainer.pt")),
            "score": list(results.glob(f"runs/evaluate/*.partial/.items.parquet{io.TMP_MARK}*")),
            "tables": list(results.glob(f"tables/.scores.parquet{io.TMP_MARK}*")),
        }[phase]
        assert partial, f"the kill in {phase} left none of that phase's half-done work"
    assert (results / "tables" / "runs.parquet").exists() and not (results / "tables" / "scores.parquet").exists()

    done = _study(reduced, results)
    assert done.returncode == 0, done.stderr[-3000:]
    now = _records(results)
    for phase, records in finished_at_kill.items():  # what had finished before a kill was not redone
        assert records and all(now.get(path) == mtime for path, mtime in records.items()), phase
    assert not list(results.rglob("*.partial")) and not _temporaries(results)

    base, base_tables = baseline
    for name, expected in base_tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(results / "tables" / f"{name}.parquet"), expected,
                                      check_exact=True)
    cfg = load_config(str(reduced))
    for mixture in cfg.mixture_names:  # same bytes for every checkpoint and every shard, not only the scores
        for kind in ("pretrain", "sft"):
            folder = steps.step_dir(cfg, results, Step(kind, mixture, "tiny", 0)).relative_to(results)
            weights = folder / "model" / "model.safetensors"
            assert (results / weights).read_bytes() == (base / weights).read_bytes(), weights
        shards = steps.mixture_dir(cfg, results, mixture, 0).relative_to(results) / "tokens" / "00000.npy"
        assert (results / shards).read_bytes() == (base / shards).read_bytes()


# --- seeds -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_another_seed_gives_other_scores_and_two_seeds_give_seed_noise(reduced, baseline):
    results, base_tables = baseline
    done = _study(reduced, results, "seeds=[1]")
    assert done.returncode == 0, done.stderr[-3000:]
    items = pd.read_parquet(results / "tables" / "items.parquet")
    assert set(items["seed"]) == {1}
    assert not items["loglik"].equals(base_tables["items"]["loglik"])

    before = _records(results)
    done = _study(reduced, results, "seeds=[0,1]")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _records(results) == before  # both seeds' runs are found finished: nothing recomputed
    scores = pd.read_parquet(results / "tables" / "scores.parquet")
    assert scores.groupby("seed").size().to_dict() == {0: 2 * 2 * len(BENCHMARKS), 1: 2 * 2 * len(BENCHMARKS)}
    snr = analysis.signal_to_noise(scores, "accuracy")
    assert len(snr) == 2 * len(BENCHMARKS)  # (PT, SFT) x benchmarks of the one scale
    assert (snr["n_seeds"] == 2).all() and (snr["n_mixtures"] == 2).all()
    assert snr["between_seed_sd"].notna().all() and snr["between_mixture_sd"].notna().all()


def test_a_folder_without_its_record_is_rebuilt_from_its_partial_copy(tmp_path):
    folder = tmp_path / "runs" / "evaluate" / "V1-P0_tiny_PT_s0-abc"
    (folder / "stale.parquet").parent.mkdir(parents=True)
    (folder / "stale.parquet").write_text("from a run whose run.json never came")
    partial = Path(f"{folder}.partial")
    (partial / "checkpoint").mkdir(parents=True)
    (partial / "checkpoint" / "trainer.pt").write_text("kept: the resume point")
    (partial / f".items.parquet{io.TMP_MARK}99-abcdef").write_text("half written when killed")
    with runner.fresh_folder(folder) as out:
        assert out == partial and sorted(p.name for p in out.iterdir()) == ["checkpoint"]
        io.write_text(out / "items.parquet", "new")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint", "items.parquet"] and not partial.exists()


# --- bad input through the step layer and the command line ---------------------------------------------


def _magic(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_exploding_loss_stops_the_step_with_the_fix(reduced, baseline, capsys, monkeypatch):
    monkeypatch.setenv("MAGIC_THREADS", "1")
    results, _ = baseline
    code, err = _magic(capsys, "pretrain", "--preset", str(reduced), "--results", str(results), "--mixture", "V1-P0",
                       "--scale", "tiny", "scales.tiny.pretrain.lr=1.0e+4")
    assert code == 1 and "Traceback" not in err
    assert "magic: pretrain diverged at step" in err and "Lower the learning rate (pretrain.lr, now 10000)" in err


def _fake_finished(folder: Path, digest: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    io.finish_run(folder, kind="test", config={}, config_hash=digest, seed=0, started=time.time())


def _truncated_weights(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path, capsys):
    cfg = load_config("smoke")
    pretrain = Step("pretrain", "V1-P0", "tiny", 0)
    folder = steps.step_dir(cfg, tmp_path, pretrain)
    _fake_finished(folder, steps.step_hash(cfg, pretrain))
    _fake_finished(steps.eval_items_dir(cfg, tmp_path), steps.eval_items_hash(cfg))
    _truncated_weights(folder / "model" / "model.safetensors")
    code, err = _magic(capsys, "evaluate", "--preset", "smoke", "--results", str(tmp_path), "--mixture", "V1-P0",
                       "--scale", "tiny", "--stage", "PT")
    assert code == 1 and err.count("\n") == 1
    assert f"magic: {folder}/model/model.safetensors is truncated or corrupt" in err
    assert f"delete {folder} and rerun `magic study`" in err


def test_corrupt_resume_checkpoint_names_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAGIC_THREADS", "1")
    cfg = load_config("smoke")
    _fake_finished(steps.mixture_dir(cfg, tmp_path, "V1-P0", 0), steps.mixture_hash(cfg, "V1-P0", 0))
    checkpoint = Path(f"{steps.step_dir(cfg, tmp_path, Step('pretrain', 'V1-P0', 'tiny', 0))}.partial/checkpoint")
    save_file({"weight": torch.zeros(4)}, str(_mkparent(checkpoint / "model" / "model.safetensors")))
    (checkpoint / "trainer.pt").write_bytes(b"PK\x03\x04 cut short")
    code, err = _magic(capsys, "pretrain", "--preset", "smoke", "--results", str(tmp_path), "--mixture", "V1-P0",
                       "--scale", "tiny")
    assert code == 1
    assert f"magic: {checkpoint}/trainer.pt is truncated or corrupt" in err
    assert f"delete {checkpoint} to restart this step from scratch" in err


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_step_without_its_data_says_what_to_run(tmp_path, capsys):
    code, err = _magic(capsys, "pretrain", "--preset", "smoke", "--results", str(tmp_path), "--mixture", "V3-P2",
                       "--scale", "tiny")
    assert code == 1
    assert "magic: pretrain V3-P2_tiny_s0 needs the mixture V3-P2 (seed 0)" in err and "run `magic data`" in err


def test_results_from_an_incompatible_version_are_refused(tmp_path, capsys):
    cfg = load_config("smoke")
    step = Step("pretrain", "V1-P0", "tiny", 0)
    folder = steps.step_dir(cfg, tmp_path, step)
    _fake_finished(folder, steps.step_hash(cfg, step))
    record = io.read_json(folder / io.RUN_RECORD)
    io.write_json(folder / io.RUN_RECORD, {**record, "results_format": 0})
    code, err = _magic(capsys, "pretrain", "--preset", "smoke", "--results", str(tmp_path), "--mixture", "V1-P0",
                       "--scale", "tiny")
    assert code == 1
    assert f"magic: {folder} was written by an incompatible magiclib (results format 0" in err
    assert "move that results folder away" in err


def test_a_nonexistent_mirror_setting_says_how_to_fix_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, "/nonexistent")
    code, err = _magic(capsys, "data", "--preset", "smoke", "--results", str(tmp_path))
    assert code == 1
    assert "magic: $MAGIC_DATA points at /nonexistent, which is not a folder; unset it or point it at" in err


def test_no_mirror_and_an_offline_hub_says_how_to_fix_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")  # no ../shared/data beside it, nor beside cwd
    monkeypatch.chdir(tmp_path)
    code, err = _magic(capsys, "data", "--preset", "smoke", "--results", str(tmp_path / "results"))
    assert code == 1
    assert "magic: no local data mirror found and the hub is offline: set $MAGIC_DATA" in err


def test_a_mirror_benchmark_in_the_wrong_schema_names_file_and_field(tmp_path, capsys, monkeypatch):
    mirror, real = tmp_path / "mirror", paths.find_mirror()
    for entry in list(real.iterdir()) + list((real / "benchmarks").iterdir()):
        link = mirror / entry.relative_to(real)
        if entry.name not in ("benchmarks", "copa"):
            _mkparent(link).symlink_to(entry)
    rows = [json.loads(line) for line in (real / "benchmarks/copa/validation.jsonl").read_text().splitlines()]
    renamed = "".join(json.dumps({("prem" if k == "premise" else k): v for k, v in row.items()}) + "\n"
                      for row in rows)
    _mkparent(mirror / "benchmarks/copa/validation.jsonl").write_text(renamed)
    monkeypatch.setenv(paths.DATA_ENV, str(mirror))
    code, err = _magic(capsys, "data", "--preset", "smoke", "--results", str(tmp_path / "results"))
    assert code == 1
    assert f"magic: {mirror}/benchmarks/copa/validation.jsonl lacks the field 'premise'" in err
    assert "rewrite it in the hub schema" in err


# --- safe loading ------------------------------------------------------------------------------------


def _code_of(path: Path) -> str:
    if path.suffix == ".py":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if keywords.get("trust_remote_code", "False") != "False":
            found.append(f"{name}(trust_remote_code=...)")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "pickle.load", "pickle.loads"):
            found.append(name)
        if name == "torch.load" and keywords.get("weights_only") != "True":
            found.append("torch.load without weights_only=True")
    return found


def test_nothing_loads_unsafely():
    """Checkpoints through safetensors or torch.load(weights_only=True), YAML through safe_load, no remote code."""
    root = paths.REPO_ROOT
    files = [*(root / "src").rglob("*.py"), *(root / "notebooks").glob("*.ipynb"), *(root / "book").glob("*.ipynb")]
    unsafe = {str(f.relative_to(root)): calls for f in files if (calls := _unsafe_calls(ast.parse(_code_of(f))))}
    assert len(files) > 20 and unsafe == {}
    assert _unsafe_calls(ast.parse("torch.load(p)\nyaml.load(t)\nf(x, trust_remote_code=True)")) == [
        "torch.load without weights_only=True", "yaml.load", "f(trust_remote_code=...)"]
