"""Scale out: the study as Slurm job arrays, submitted through submitit.

One data job, then for each scale one array per stage (pretrain, sft, evaluate PT, evaluate SFT), each task
one step of the grid. Task i of an array waits for task i of the array it reads (`aftercorr`), so a mixture's
SFT starts as soon as its own pretraining ends; when a task fails, its dependants are cancelled
(`--kill-on-invalid-dep`), not left pending. Each stage asks for its own resources (`slurm.<stage>`), GPUs
only where the scale has any, and every job script is checked with `sbatch --test-only` before the first
is submitted: a study is submitted whole or not at all.

A task runs its step's `magic` command (under the venv's `torchrun` when the scale asks for several GPUs) in
a child process. Slurm's warning before the time limit (SIGUSR2) reaches the training loop, which writes a
checkpoint at the end of its step; the task then requeues itself (submitit's Checkpointable) and the next
job resumes there, so a run may span several jobs. SIGTERM (scancel, preemption) checkpoints and stops too.

The job ids go to `<results>/slurm/jobs.json`: a second `magic study` leaves steps that are queued or
running alone, `magic status` reports each stage (done, queued, running, failed with its log and error
line), and `--wait` follows the jobs to the end. `--dry-run` writes the sbatch scripts and task commands to
`<results>/slurm/dry_run.sh` and prints them.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import io, steps
from .config import StageResources, StudyConfig
from .errors import NotReady
from .slurm_task import StepTask
from .steps import Step, plan

TORCHRUN = Path(sys.executable).with_name("torchrun")  # the venv's, so no activated environment is needed
JOBS_FILE = "jobs.json"
LIVE_STATES = {"PENDING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued", "REQUEUE_FED": "queued",
               "SUSPENDED": "queued", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
               "RESIZING": "running", "STOPPED": "running", "SIGNALING": "running"}
POLL_S = float(os.environ.get("MAGIC_SLURM_POLL_S", "10"))  # --wait: seconds between looks at the queue
# The line of a task's log that says why it failed: the CLI's one-line error, Slurm's own verdict
# (cancelled, time limit, out of memory), or the last line of a traceback.
_ERROR_LINE = re.compile(r"^(magic: .+|slurmstepd: error: .+|[A-Za-z_][\w.]*(Error|Exception|Interrupted|Diverged|Full"
                         r"|Value|File|Name|Ready|Type)\b: .+)$")


# --- what is submitted -------------------------------------------------------------------------------


def task_command(config_path: Path, results: Path, step: Step, gpus: int, notebook: bool = False) -> list[str]:
    """The command one array task runs for `step` (through its papermill notebook with `notebook`)."""
    args = [step.kind, "--preset", str(config_path), "--results", str(results), "--mixture", step.mixture,
            "--scale", step.scale, "--seed", str(step.seed)]
    if step.stage:
        args += ["--stage", step.stage]
    if gpus > 1 and step.kind != "evaluate":
        return [str(TORCHRUN), "--standalone", f"--nproc_per_node={gpus}", "-m", "magiclib.cli", *args]
    return [sys.executable, "-m", "magiclib.cli", *args, *(["--notebook"] if notebook else [])]


def cluster_config(cfg: StudyConfig) -> StudyConfig:
    """`cfg` with each `auto` precision decided for the nodes its jobs run on, not for this (login) node: bf16
    where the scale has GPUs, else this CPU's own decision (precision.resolve); scoring in bf16 only when every
    scale scores on a GPU. Written into config.yaml, it is what every task reads and hashes."""
    from . import precision

    scales = {name: dataclasses.replace(
        scale, **{stage: dataclasses.replace(getattr(scale, stage), precision=precision.train_precision(
            getattr(scale, stage), scale.model, cuda=scale.gpus > 0)) for stage in ("pretrain", "sft")})
        for name, scale in cfg.scales.items()}
    on_gpus = all(scale.gpus > 0 for scale in cfg.scales.values())
    scoring = dataclasses.replace(cfg.eval, precision=precision.eval_precision(cfg, cuda=on_gpus))
    return dataclasses.replace(cfg, scales=scales, eval=scoring)


def data_command(config_path: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "magiclib.cli", "data", "--preset", str(config_path), "--results", str(results)]


def stage_gpus(cfg: StudyConfig, kind: str, scale: str | None) -> int:
    """GPUs per task: the scale's for training, one for scoring when the scale has any, none for data."""
    if kind == "data":
        return 0
    gpus = cfg.scales[scale].gpus
    return min(gpus, 1) if kind == "evaluate" else gpus


def arrays(cfg: StudyConfig, results: Path, config_path: Path, skip: frozenset[Step] = frozenset()) -> list[dict]:
    """The job arrays of the study (steps not finished and not in `skip`): name, resources, upstream, tasks."""
    out = []
    steps_by_array: dict[tuple, list[Step]] = {}
    for st in plan(cfg):
        if st not in skip and not steps.is_done(cfg, results, st):
            steps_by_array.setdefault((st.kind, st.stage, st.scale), []).append(st)
    for (kind, stage, scale), members in steps_by_array.items():
        gpus = stage_gpus(cfg, kind, scale)
        after = {"sft": "pretrain", "evaluate": "pretrain" if stage == "PT" else "sft"}.get(kind)
        out.append({
            "name": f"{kind}{'-' + stage if stage else ''}-{scale}", "kind": kind, "scale": scale, "gpus": gpus,
            "resources": getattr(cfg.slurm, kind), "after": after and f"{after}-{scale}", "steps": members,
            "commands": [task_command(config_path, results, st, gpus, cfg.slurm.notebooks) for st in members],
        })
    return out


def job_parameters(cfg: StudyConfig, name: str, resources: StageResources, gpus: int) -> dict:
    """sbatch settings of one job or array, as submitit's SlurmExecutor names them."""
    s = cfg.slurm
    params = {"job_name": name, "time": resources.time_min, "cpus_per_task": resources.cpus,
              "mem": f"{resources.mem_gb}GB", "signal_delay_s": s.signal_delay_s,
              "array_parallelism": s.max_parallel,
              "additional_parameters": {"kill-on-invalid-dep": "yes", **s.extra}}
    if s.setup:
        params["setup"] = list(s.setup)
    if gpus:
        params["gpus_per_node"] = f"{s.gpu_type}:{gpus}" if s.gpu_type else gpus
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    return params


def sbatch_script(params: dict, folder: Path, tasks: int | None, dependency: str | None = None) -> str:
    """The sbatch script submitit writes for these parameters (for dry runs and the up-front check)."""
    from submitit.slurm.slurm import _make_sbatch_string

    extra = dict(params["additional_parameters"], **({"dependency": dependency} if dependency else {}))
    return _make_sbatch_string(command=f"{sys.executable} -u -m submitit.core._submit {folder}", folder=folder,
                               map_count=tasks, **{**params, "additional_parameters": extra})


def _data_done(cfg: StudyConfig, results: Path) -> bool:
    pieces = [(steps.pools_dir(cfg, results), steps.pools_hash(cfg)),
              (steps.tokenizer_dir(cfg, results), steps.tokenizer_hash(cfg)),
              (steps.sft_data_dir(cfg, results), steps.sft_data_hash(cfg)),
              (steps.eval_items_dir(cfg, results), steps.eval_items_hash(cfg))]
    pieces += [(steps.mixture_dir(cfg, results, m, seed), steps.mixture_hash(cfg, m, seed))
               for seed in cfg.all_seeds for m in cfg.mixture_names]
    return all(io.is_finished(folder, digest) for folder, digest in pieces)


# --- submitting ----------------------------------------------------------------------------------------


def submit(cfg: StudyConfig, results: Path, *, dry_run: bool = False, wait: bool = False,
           cluster: str | None = None) -> int:
    """Submit (or, with dry_run, write and print) what the study still needs; with `wait`, follow it to the end.

    The study's config.yaml is written first, with its precisions decided for the nodes the jobs run on.
    `cluster="local"` runs the same tasks here through submitit's local executor, stage after stage.
    """
    from .results import write_config

    cfg = cluster_config(cfg)
    config_path = write_config(cfg, results)
    folder = results / "slurm"
    book = JobBook(folder)
    live = {} if dry_run or cluster == "local" else book.live()
    busy = frozenset(st for st in plan(cfg) if _key(cfg, results, st) in live)
    todo = arrays(cfg, results, config_path, skip=busy)
    need_data = not _data_done(cfg, results) and "data" not in live
    if busy:
        print(f"left alone: {len(busy)} step(s) already queued or running (see `magic status`)")
    data_params = job_parameters(cfg, "data", cfg.slurm.data, 0)
    if dry_run:
        return _dry_run(cfg, folder, todo, data_params, need_data, config_path, results)
    if not todo and not need_data:
        print("nothing to submit: every step is finished" + (", queued or running" if busy else ""))
        return follow(cfg, results) if wait else 0
    if cluster != "local":
        check_scripts(cfg, folder, todo, data_params if need_data else None)
    import submitit

    submitted: list[str] = []
    try:
        upstream = {"data": live.get("data", {}).get("job")}
        if need_data:
            job = _executor(cfg, folder / "data", data_params, cluster).submit(
                StepTask(data_command(config_path, results), cfg.slurm.data.cpus, cfg.slurm.signal_delay_s))
            submitted.append(job.job_id)
            book.record({"data": {"job": job.job_id, "array": "data", "log": str(job.paths.stderr)}})
            upstream["data"] = job.job_id
            if cluster == "local":
                job.result()
        jobs_of: dict[str, dict[Step, str]] = {}
        for array in todo:
            dependency = _dependency(cfg, results, array, jobs_of, live, upstream["data"])
            params = job_parameters(cfg, array["name"], array["resources"], array["gpus"])
            if dependency and cluster != "local":
                params["additional_parameters"] = {**params["additional_parameters"], "dependency": dependency}
            ex = _executor(cfg, folder / array["name"], params, cluster)
            with ex.batch():  # one array
                jobs = [ex.submit(StepTask(command, array["resources"].cpus, cfg.slurm.signal_delay_s))
                        for command in array["commands"]]
            submitted += [job.job_id for job in jobs]
            jobs_of[array["name"]] = dict(zip(array["steps"], (j.job_id for j in jobs), strict=True))
            book.record({_key(cfg, results, st): {"job": job.job_id, "array": array["name"],
                                                  "log": str(job.paths.stderr)}
                         for st, job in zip(array["steps"], jobs, strict=True)})
            if cluster == "local":
                for job in jobs:
                    job.result()
            print(f"submitted {array['name']}: {len(jobs)} task(s) ({jobs[0].job_id.split('_')[0]})"
                  + (f", after {dependency}" if dependency and cluster != "local" else ""))
    except (subprocess.CalledProcessError, submitit.core.utils.FailedSubmissionError, OSError) as err:
        _cancel(submitted)
        raise NotReady(f"submitting failed ({err}); the {len(submitted)} job(s) submitted before it were "
                       "cancelled, so nothing of this study is queued: fix the cause and rerun") from None
    return follow(cfg, results) if wait else 0


def _executor(cfg: StudyConfig, folder: Path, params: dict, cluster: str | None):
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=cfg.slurm.max_requeues)
    ex.update_parameters(**{f"slurm_{key}": value for key, value in params.items()})
    return ex


def _dependency(cfg, results, array: dict, jobs_of: dict, live: dict, data_job: str | None) -> str | None:
    """Task i after task i of the upstream array when both were submitted now, else after each upstream task."""
    if array["after"] is None:
        return f"afterok:{data_job}" if data_job else None
    upstream = jobs_of.get(array["after"], {})
    needed = [st.needs() for st in array["steps"]]
    if needed == list(upstream) and upstream:
        return f"aftercorr:{next(iter(upstream.values())).split('_')[0]}"
    waits = sorted({upstream.get(st) or live.get(_key(cfg, results, st), {}).get("job") for st in needed} - {None})
    waits = waits or ([data_job] if data_job else [])
    return "afterok:" + ":".join(waits) if waits else None


def check_scripts(cfg: StudyConfig, folder: Path, todo: list[dict], data_params: dict | None) -> None:
    """Refuse, before anything is submitted, a job the cluster would reject (`sbatch --test-only`)."""
    if shutil.which("sbatch") is None:
        raise NotReady("sbatch is not on PATH: the slurm executor needs a Slurm cluster's commands "
                       "(or run the study here with --executor local)")
    if any(a["gpus"] > 1 and a["kind"] != "evaluate" for a in todo) and not TORCHRUN.exists():
        raise NotReady(f"{TORCHRUN} does not exist; multi-GPU scales run under the venv's torchrun (install torch)")
    jobs = [("data", data_params, None)] if data_params else []
    jobs += [(a["name"], job_parameters(cfg, a["name"], a["resources"], a["gpus"]), len(a["commands"]))
             for a in todo]
    for name, params, tasks in jobs:
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as handle:
            handle.write(sbatch_script(params, folder / name, tasks))
            handle.flush()
            check = subprocess.run(["sbatch", "--test-only", handle.name], capture_output=True, text=True)
        if check.returncode:
            reason = (check.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise NotReady(f"the cluster refuses the {name} job ({reason}); fix the slurm.* settings "
                           "(partition, account, qos, constraint, gpu_type, extra, slurm.<stage> resources). "
                           "Nothing was submitted")


def _cancel(job_ids: list[str]) -> None:
    arrays_ = sorted({j.split("_")[0] for j in job_ids})
    if arrays_:
        subprocess.run(["scancel", *arrays_], capture_output=True)


def _dry_run(cfg, folder, todo, data_params, need_data, config_path, results) -> int:
    lines = []
    if need_data:
        lines.append(f"# data job: 1 task, after nothing\n{sbatch_script(data_params, folder / 'data', None)}\n"
                     f"# task: {shlex.join(data_command(config_path, results))}")
    for array in todo:
        params = job_parameters(cfg, array["name"], array["resources"], array["gpus"])
        after = f"aftercorr:<{array['after']}>" if array["after"] else ("afterok:<data>" if need_data else None)
        script = sbatch_script(params, folder / array["name"], len(array["commands"]), after)
        tasks = "\n".join(f"# task {i}: {shlex.join(c)}" for i, c in enumerate(array["commands"]))
        lines.append(f"# array {array['name']}: {len(array['commands'])} tasks, {array['gpus']} GPU(s) each, "
                     f"after {array['after'] or 'data'}\n{script}\n{tasks}")
    text = "\n\n".join(lines) + "\n"
    io.write_text(folder / "dry_run.sh", text)
    print(text)
    return 0


# --- what is where -------------------------------------------------------------------------------------


def _key(cfg: StudyConfig, results: Path, step: Step) -> str:
    return str(steps.step_dir(cfg, results, step).relative_to(results))


class JobBook:
    """`<results>/slurm/jobs.json`: the job id and log of each step this study submitted (latest first)."""

    def __init__(self, folder: Path):
        self.path = folder / JOBS_FILE

    def load(self) -> dict:
        return io.read_json(self.path) if self.path.exists() else {}

    def record(self, entries: dict) -> None:
        io.write_json(self.path, {**self.load(), **entries})

    def live(self) -> dict:
        """The recorded entries whose job is still queued or running, with that state."""
        entries = self.load()
        if not entries:
            return {}
        states = queue_states()
        return {key: {**entry, "state": LIVE_STATES[states[entry["job"]]]} for key, entry in entries.items()
                if states.get(entry["job"]) in LIVE_STATES}


def queue_states() -> dict[str, str]:
    """State of each of this user's jobs and array tasks in the queue (ids as `123` or `123_4`)."""
    if shutil.which("squeue") is None:
        raise NotReady("squeue is not on PATH: this study's jobs were submitted to Slurm, and their state can only "
                       "be read where the cluster's commands are")
    out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"], capture_output=True,
                         text=True)
    if out.returncode:
        raise NotReady(f"squeue failed ({out.stderr.strip()}); is the Slurm controller reachable?")
    return dict(line.split("|", 1) for line in out.stdout.split())


def step_states(cfg: StudyConfig, results: Path) -> pd.DataFrame:
    """One row per step: stage, scale, label and state (done | queued | running | failed | todo), job and log."""
    entries = JobBook(results / "slurm").load()
    states = queue_states() if entries else {}  # a study never submitted to Slurm needs no controller
    data = entries.get("data", {})
    data_state = "done" if _data_done(cfg, results) else (
        LIVE_STATES.get(states.get(data.get("job", ""), "")) or ("failed" if data else "todo"))
    rows = [{"stage": "data", "scale": "-", "step": "data", "state": data_state, "job": data.get("job"),
             "log": data.get("log"), "error": failure_reason(Path(data["log"])) if data_state == "failed" else None}]
    for st in plan(cfg):
        entry = entries.get(_key(cfg, results, st), {})
        live = LIVE_STATES.get(states.get(entry.get("job", ""), ""))
        if steps.is_done(cfg, results, st):
            state = "done"
        else:
            state = live or ("failed" if entry else "todo")
        rows.append({"stage": f"{st.kind}{'-' + st.stage if st.stage else ''}", "scale": st.scale,
                     "step": st.label, "state": state, "job": entry.get("job"), "log": entry.get("log"),
                     "error": failure_reason(Path(entry["log"])) if state == "failed" else None})
    return pd.DataFrame(rows)


def status(cfg: StudyConfig, results: Path) -> int:
    """Print per stage what is done, queued, running and failed, then each failure with its log."""
    table = step_states(cluster_config(cfg), results)
    counts = table.groupby(["stage", "scale"], sort=False)["state"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=["done", "queued", "running", "failed", "todo"], fill_value=0)
    print(f"study {cfg.name!r} in {results}")
    print(counts.to_string())
    for row in table[table.state == "failed"].itertuples():
        print(f"FAILED {row.stage} {row.step} (job {row.job}): {row.error}" + _log_line(row.log))
    return 0


def _log_line(log: str | None) -> str:
    return f"\n  log: {log}" if log and Path(log).exists() else ""


def failure_reason(log: Path) -> str:
    """The line of a task's log that says why it failed, with the failed notebook's own error if it names one."""
    if not log.exists():
        return "never started: cancelled while queued (the step it needs failed, or scancel)"
    lines = [line for line in log.read_text(errors="replace").splitlines() if _ERROR_LINE.match(line)]
    if not lines:
        return f"no error line in {log}"
    magic = [line for line in lines if line.startswith("magic: ")]
    line = (magic or lines)[-1]
    notebook = re.search(r"see (\S+\.ipynb)", line)
    if notebook and Path(notebook.group(1)).exists():
        line = _notebook_error(Path(notebook.group(1))) or line
    return line


def _notebook_error(path: Path) -> str | None:
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output['ename']}: {output['evalue']} (in {path})"
    return None


def follow(cfg: StudyConfig, results: Path) -> int:
    """Wait until none of the study's jobs is queued or running, then assemble the tables and report failures."""
    from .results import assemble_tables

    bar = tqdm(total=len(plan(cfg)) + 1, desc="study (slurm)", unit="step")  # the steps and the data job
    while True:
        table = step_states(cfg, results)
        counts = table.state.value_counts()
        bar.set_postfix_str(", ".join(f"{k} {counts.get(k, 0)}" for k in ("queued", "running", "failed")),
                            refresh=False)
        bar.update(int((table.state == "done").sum()) - bar.n)
        if not counts.get("queued") and not counts.get("running"):
            break
        time.sleep(POLL_S)
    bar.close()
    assemble_tables(cfg, results)
    failed = table[table.state.isin(["failed", "todo"])]
    for row in failed.itertuples():
        print(f"FAILED {row.stage} {row.step}: {row.error or 'not run'}" + _log_line(row.log), file=sys.stderr)
    return 1 if len(failed) else 0


