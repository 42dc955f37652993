"""The slurm executor without a cluster: job scripts and their resources, the up-front check that submits
a study whole or not at all, the guard against submitting queued steps twice, and failure reports.
Fake `sbatch`, `squeue` and `scancel` on PATH stand in for Slurm; tests/test_slurm.py uses a real one."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from magiclib import slurm, steps
from magiclib.config import ConfigError, load_config
from magiclib.errors import NotReady

SBATCH = """#!/bin/bash
# Accepts every --test-only check except those naming the partition "nope"; a real submission gets the
# next job id, logged (with its script) to $FAKE_SLURM/submitted.
grep -q -- '--partition=nope' "${@: -1}" && { echo "sbatch: error: invalid partition specified: nope" >&2; exit 1; }
[ "$1" = "--test-only" ] && { echo "sbatch: Job 1 to start at now" >&2; exit 0; }
n=$(( $(wc -l < "$FAKE_SLURM/submitted" 2>/dev/null || echo 0) + 100 ))
echo "$n $(grep -- '--dependency' "${@: -1}")" >> "$FAKE_SLURM/submitted"
echo "Submitted batch job $n"
"""
SQUEUE = """#!/bin/bash
cat "$FAKE_SLURM/queue" 2>/dev/null || true
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", SBATCH), ("squeue", SQUEUE), ("scancel", "#!/bin/bash\necho \"$@\" >> "
                                                                           "\"$FAKE_SLURM/cancelled\"\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(tmp_path))
    return tmp_path


def submitted(fake) -> list[str]:
    path = fake / "submitted"
    return path.read_text().splitlines() if path.exists() else []


def test_paper_dry_run_asks_each_stage_for_what_it_needs(tmp_path, capsys):
    cfg = load_config("paper")
    assert slurm.submit(cfg, tmp_path, dry_run=True) == 0
    text = (tmp_path / "slurm" / "dry_run.sh").read_text()
    scripts = dict(part.split("\n", 1) for part in re.split(r"\n\n(?=# (?:array|data job))", text))
    data = next(body for head, body in scripts.items() if head.startswith("# data job"))
    assert "--gpus-per-node" not in data and "#SBATCH --cpus-per-task=32" in data and "magiclib.cli data" in data
    pretrain = next(body for head, body in scripts.items() if head.startswith("# array pretrain-1B"))
    assert "#SBATCH --gpus-per-node=8" in pretrain and "#SBATCH --time=1440" in pretrain
    assert "#SBATCH --array=0-8%4" in pretrain and "#SBATCH --signal=USR2@600" in pretrain
    assert f"{sys.executable[:-len('python')]}torchrun --standalone --nproc_per_node=8" in pretrain
    evaluate = next(body for head, body in scripts.items() if head.startswith("# array evaluate-SFT-1B"))
    assert "#SBATCH --gpus-per-node=1" in evaluate and "#SBATCH --mem=64GB" in evaluate
    assert "#SBATCH --dependency='aftercorr:<sft-1B>'" in evaluate and "--kill-on-invalid-dep=yes" in evaluate
    assert text.count("# array ") == 8 and text.count("# task ") == 8 * 9 and text.count("# task: ") == 1
    # Precisions are decided for the GPU nodes the jobs run on, not for this CPU-only machine.
    written = load_config(str(tmp_path / "config.yaml"))
    assert {s.pretrain.precision for s in written.scales.values()} == {"bf16"} and written.eval.precision == "bf16"


def test_cpu_only_scales_ask_for_no_gpu_and_site_settings_reach_the_scripts(tmp_path):
    cfg = load_config("smoke", ["slurm.partition=cpu", "slurm.qos=short", "slurm.constraint=avx512",
                                "slurm.setup=[module load python]", "slurm.extra={mail-type: FAIL}"])
    slurm.submit(cfg, tmp_path, dry_run=True)
    text = (tmp_path / "slurm" / "dry_run.sh").read_text()
    assert "gpus" not in text
    for line in ("--partition=cpu", "--qos=short", "--constraint=avx512", "--mail-type=FAIL"):
        assert text.count(line) == 9, line  # the data job and 8 arrays
    assert text.count("--cpus-per-task=1\n") == 8 and text.count("--cpus-per-task=2\n") == 1
    assert text.count("\nmodule load python\n") == 9


def test_config_refuses_a_warning_longer_than_the_time_limit():
    with pytest.raises(ConfigError, match="signal_delay_s"):
        load_config("smoke", ["slurm.signal_delay_s=900"])  # smoke jobs have 10 minutes


def test_a_study_the_cluster_refuses_is_not_submitted_at_all(tmp_path, fake_slurm):
    cfg = load_config("smoke", ["mixtures=[V1-P0]", "slurm.partition=nope"])
    with pytest.raises(NotReady, match="invalid partition specified: nope.*Nothing was submitted"):
        slurm.submit(cfg, tmp_path)
    assert submitted(fake_slurm) == []


def test_submission_records_jobs_and_a_rerun_leaves_queued_steps_alone(tmp_path, fake_slurm, capsys):
    cfg = load_config("smoke", ["mixtures=[V1-P0]"])
    assert slurm.submit(cfg, tmp_path) == 0
    lines = submitted(fake_slurm)
    assert len(lines) == 1 + 8  # the data job and 2 scales x 4 stages
    assert "afterok:100" in lines[1] and "aftercorr:" in lines[-1]
    jobs = json.loads((tmp_path / "slurm" / "jobs.json").read_text())
    assert set(jobs) == {"data"} | {slurm._key(cfg, tmp_path, st) for st in steps.plan(cfg)}
    # Everything is queued now: a second `magic study` submits nothing.
    (fake_slurm / "queue").write_text("".join(f"{e['job']}|PENDING\n" for e in jobs.values()))
    capsys.readouterr()
    assert slurm.submit(cfg, tmp_path) == 0
    assert len(submitted(fake_slurm)) == 9 and "nothing to submit" in capsys.readouterr().out
    # Scale tiny's pretraining failed and its dependants were cancelled; the rest is still queued. A rerun
    # submits scale tiny's four arrays again, the first one after the data job that is still queued.
    (fake_slurm / "queue").write_text("".join(f"{e['job']}|PENDING\n" for k, e in jobs.items() if "_tiny_" not in k))
    states = slurm.step_states(cfg, tmp_path).set_index(["stage", "step"])["state"]
    assert states["pretrain", "V1-P0_tiny_s0"] == "failed" and states["pretrain", "V1-P0_tiny2_s0"] == "queued"
    assert slurm.submit(cfg, tmp_path) == 0
    again = submitted(fake_slurm)[9:]
    assert len(again) == 4 and "afterok:100" in again[0] and all("aftercorr" in line for line in again[1:])


def test_a_failure_is_reported_with_the_real_error_line(tmp_path):
    log = tmp_path / "1_0_0_log.err"
    log.write_text("/venv/lib/python3.11/site-packages/ipykernel/kernelapp.py: warning: something harmless\n"
                   "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                   "ValueError: the tokenizer has 600 tokens but model.vocab_size is 512\n"
                   "magiclib.slurm_task.StepFailed: `python -m magiclib.cli pretrain` exited with code 1\n"
                   "srun: error: vm: task 0: Exited with exit code 1\n")
    assert slurm.failure_reason(log) == "ValueError: the tokenizer has 600 tokens but model.vocab_size is 512"
    log.write_text("pretrain: 10%\nmagic: pretrain stopped by SIGTERM after step 3 of 8; the checkpoint is in x\n"
                   "slurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-01-01T00:00:00 ***\n")
    assert slurm.failure_reason(log).startswith("magic: pretrain stopped by SIGTERM")
    assert "never started" in slurm.failure_reason(tmp_path / "missing.err")


def test_the_task_wrapper_passes_sigterm_on_and_waits_for_the_step(tmp_path):
    """The child (here a shell that traps TERM, writes a file and exits) gets the signal and is waited for."""
    script = tmp_path / "child.sh"
    script.write_text(f"trap 'sleep 1; echo saved > {tmp_path}/saved; exit 3' TERM\nsleep 30 & wait\n")
    runner = tmp_path / "run.py"
    runner.write_text("import sys\nfrom magiclib.slurm_task import StepTask\n"
                      f"StepTask(['bash', {str(script)!r}], 1, 60)()\n")
    process = subprocess.Popen([sys.executable, str(runner)], stderr=subprocess.PIPE, text=True)
    import time

    time.sleep(3)
    process.terminate()
    _, err = process.communicate(timeout=30)
    assert (tmp_path / "saved").read_text() == "saved\n"
    assert "exited with code 3" in err


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_tasks_through_their_notebooks(tmp_path):
    cfg = load_config("smoke", ["mixtures=[V2-P1]", "slurm.notebooks=true"])
    cfg.scales = {"tiny": cfg.scales["tiny"]}  # one run of each kind is enough here
    assert slurm.submit(cfg, tmp_path, cluster="local") == 0
    for st in steps.plan(cfg):  # each run is done and keeps its executed papermill notebook as its record
        assert steps.is_done(cfg, tmp_path, st)
        assert (steps.step_dir(cfg, tmp_path, st) / "run.ipynb").exists()


def test_status_of_a_study_never_submitted_needs_no_cluster(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no squeue anywhere
    cfg = load_config("smoke", ["mixtures=[V1-P0]"])
    assert slurm.status(cfg, tmp_path) == 0
    out = capsys.readouterr().out
    assert "todo" in out and "FAILED" not in out
    assert (slurm.step_states(cfg, tmp_path).state == "todo").all()
