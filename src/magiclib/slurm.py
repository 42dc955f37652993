"""Scale out: the study as Slurm job arrays, submitted through submitit.

One data job, then for each scale one array per stage (pretrain, sft, evaluate PT, evaluate SFT), each
task one step of the grid. Task i of an array waits for task i of the array it reads (`aftercorr`), so
a mixture's SFT starts as soon as its own pretraining ends. A task runs the step's papermill notebook,
or, when the scale asks for several GPUs, the same step under `torchrun` inside the job.
`--dry-run` writes the sbatch scripts and the task commands to `<results>/slurm/` and prints them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from . import io, steps
from .config import StudyConfig
from .steps import Step


def task_command(config_path: Path, results: Path, step: Step, gpus: int) -> list[str]:
    """The command one array task runs for `step`."""
    args = [step.kind, "--preset", str(config_path), "--results", str(results), "--mixture", step.mixture,
            "--scale", step.scale, "--seed", str(step.seed)]
    if step.stage:
        args += ["--stage", step.stage]
    if gpus > 1 and step.kind != "evaluate":
        return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "magiclib.cli", *args]
    return [sys.executable, "-m", "magiclib.cli", *args, "--notebook"]


def arrays(cfg: StudyConfig, results: Path, config_path: Path) -> list[dict]:
    """The job arrays of the study: name, resources, the array it depends on, and its task commands."""
    out = []
    steps_by_array: dict[tuple, list[Step]] = {}
    for st in steps.plan(cfg):
        if not steps.is_done(cfg, results, st):
            steps_by_array.setdefault((st.kind, st.stage, st.scale), []).append(st)
    for (kind, stage, scale), members in steps_by_array.items():
        gpus = cfg.scales[scale].gpus if kind != "evaluate" else 1
        after = {"sft": "pretrain", "evaluate": "pretrain" if stage == "PT" else "sft"}.get(kind)
        out.append({
            "name": f"{kind}{'-' + stage if stage else ''}-{scale}",
            "kind": kind, "scale": scale, "gpus": gpus, "after": after and f"{after}-{scale}",
            "commands": [task_command(config_path, results, st, gpus) for st in members],
        })
    return out


def run_command(command: list[str]) -> str:
    """What one array task does: run its command (submitit pickles this function into the job)."""
    import submitit

    return submitit.helpers.CommandFunction(command)()


def _sbatch_parameters(cfg: StudyConfig, gpus: int) -> dict:
    s = cfg.slurm
    params = {"timeout_min": s.time_min, "cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb,
              "gpus_per_node": gpus, "tasks_per_node": 1, "slurm_array_parallelism": s.max_parallel}
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.account:
        params["slurm_account"] = s.account
    return params


def sbatch_script(cfg: StudyConfig, folder: Path, array: dict) -> str:
    """The sbatch script submitit would write for `array` (for dry runs and review)."""
    from submitit.slurm.slurm import _make_sbatch_string

    s = cfg.slurm
    return _make_sbatch_string(
        command=f"{sys.executable} -u -m submitit.core._submit {folder}", folder=folder,
        job_name=array["name"], partition=s.partition, account=s.account, time=s.time_min,
        cpus_per_task=s.cpus_per_task, gpus_per_node=array["gpus"] or None, mem=f"{s.mem_gb}GB",
        map_count=len(array["commands"]), array_parallelism=s.max_parallel,
        dependency=f"aftercorr:<{array['after']}>" if array["after"] else None)


def submit(cfg: StudyConfig, results: Path, config_path: Path, *, dry_run: bool = False,
           cluster: str | None = None) -> int:
    """Submit (or, with dry_run, write and print) the study's arrays. `cluster="local"` runs them here."""
    folder = results / "slurm"
    todo = arrays(cfg, results, config_path)
    data_cmd = [sys.executable, "-m", "magiclib.cli", "data", "--preset", str(config_path),
                "--results", str(results)]
    if dry_run:
        lines = [f"# data job\n{shlex.join(data_cmd)}"]
        for array in todo:
            script = sbatch_script(cfg, folder / array["name"], array)
            tasks = "\n".join(f"# task {i}: {shlex.join(c)}" for i, c in enumerate(array["commands"]))
            lines.append(f"# array {array['name']}: {len(array['commands'])} tasks, {array['gpus']} GPU(s) "
                         f"each, after {array['after'] or 'data'}\n{script}\n{tasks}")
        text = "\n\n".join(lines) + "\n"
        io.write_text(folder / "dry_run.sh", text)
        print(text)
        return 0
    import submitit

    def executor(name: str, gpus: int):
        ex = submitit.AutoExecutor(folder=folder / name, cluster=cluster)
        ex.update_parameters(name=name, **_sbatch_parameters(cfg, gpus))
        return ex

    jobs = executor("data", 0).submit(submitit.helpers.CommandFunction(data_cmd))
    waits = {"data": [jobs]}
    if cluster == "local":
        jobs.result()  # the local executor has no dependencies: run the stages in order
    for array in todo:
        ex = executor(array["name"], array["gpus"])
        upstream = waits.get(array["after"] or "data")
        if cluster != "local" and upstream:
            # task i waits for task i upstream when the arrays line up, else for the whole array
            kind = "aftercorr" if array["after"] and len(upstream) == len(array["commands"]) else "afterok"
            ex.update_parameters(slurm_additional_parameters={
                "dependency": f"{kind}:{upstream[0].job_id.split('_')[0]}"})
        submitted = ex.map_array(run_command, array["commands"])
        if cluster == "local":
            for job in submitted:
                job.result()
        waits[array["name"]] = submitted
        print(f"submitted {array['name']}: {len(submitted)} tasks ({submitted[0].job_id.split('_')[0]})")
    return 0
