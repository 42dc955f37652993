"""Local executors: run a study's steps on this machine, resumably, as their inputs become ready.

`local` runs each step as a papermill-executed run notebook in N worker processes; `inline` runs the same
step functions in this process, without papermill. (The Slurm executor, `slurm`, submits the same steps
as job arrays.) The plan comes from `steps`, a step runs through `runner`, and the tables are rebuilt by
`results` when the study ends. Finished steps are skipped, a failed step is reported with the path of its
executed notebook while the rest goes on where it can, and re-running resumes.
"""

from __future__ import annotations

import functools
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from . import io, paths, runner, steps
from .config import StudyConfig
from .errors import user_message
from .results import assemble_tables, write_config
from .steps import Step

NOTEBOOKS = paths.REPO_ROOT / "notebooks"


def run_study(cfg: StudyConfig, results: Path, *, executor: str = "local", workers: int | None = None) -> int:
    """Run the study's data steps, then every unfinished step; returns a process exit code (1: a step failed)."""
    results.mkdir(parents=True, exist_ok=True)
    config_path = write_config(cfg, results)
    started, cpu_started = time.time(), _cpu_seconds()
    runner.run_data(cfg, results)
    timings = {"data": {"steps": 1, "step_s": time.time() - started, "start": started, "end": time.time()}}
    todo = [st for st in steps.plan(cfg) if not steps.is_done(cfg, results, st)]
    workers = workers or (os.cpu_count() or 1)
    run = _run_inline if executor == "inline" else _run_notebooks
    failed = run(cfg, results, config_path, todo, workers, timings)
    assemble_tables(cfg, results)
    write_timings(results, timings, started, _cpu_seconds() - cpu_started, executor,
                  1 if executor == "inline" else workers)
    for step, where in failed:
        print(f"FAILED {step.kind} {step.label}: see {where}", file=sys.stderr)
    return 1 if failed else 0


def _cpu_seconds() -> float:
    """CPU time of this process and of every finished child (workers and their notebook kernels)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write_timings(results: Path, timings: dict, started: float, cpu_s: float, executor: str, workers: int) -> None:
    """Per-stage wall time (first start to last end), summed step time, and CPU use of one `magic study` run."""
    total = time.time() - started
    cores = os.cpu_count() or 1
    stages = {kind: {"steps": r["steps"], "wall_s": round(r["end"] - r["start"], 1), "step_s": round(r["step_s"], 1)}
              for kind, r in timings.items()}
    record = {"stages": stages, "total_s": round(total, 1), "cpu_s": round(cpu_s, 1),
              "cpu_utilisation": round(cpu_s / (total * cores), 3), "cores": cores, "executor": executor,
              "workers": workers, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    io.write_json(results / "timings.json", record)
    print("wall time (s): " + ", ".join(f"{k} {v['wall_s']:.0f}" for k, v in stages.items())
          + f", total {total:.0f}; CPU use {record['cpu_utilisation']:.0%} of {cores} cores")


def _schedule(cfg: StudyConfig, results: Path, todo: list[Step], workers: int,
              submit: Callable[[Step], Future], timings: dict) -> list[tuple[Step, str]]:
    """Run steps as their inputs become ready, at most `workers` at a time; collect failures.

    A step whose input failed is not run and is reported as failed too, with the reason.
    """
    pending, running, finished, failed = list(todo), {}, set(), []
    bar = tqdm(total=len(todo), desc="study", unit="step")

    def ready(st: Step) -> bool:
        need = st.needs()
        return need is None or need in finished or steps.is_done(cfg, results, need)

    while pending or running:
        blocked = [st for st in pending if st.needs() in {f for f, _ in failed}]
        while blocked:  # skip everything downstream of a failure
            for st in blocked:
                pending.remove(st)
                failed.append((st, f"not run: {st.needs().kind} {st.needs().label} failed"))
                bar.update(1)
            blocked = [st for st in pending if st.needs() in {f for f, _ in failed}]
        for st in [s for s in pending if ready(s)][: workers - len(running)]:
            pending.remove(st)
            running[submit(st)] = (st, time.time())
        if not running:
            break
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            st, t0 = running.pop(future)
            record = timings.setdefault(st.kind, {"steps": 0, "step_s": 0.0, "start": t0, "end": t0})
            record["steps"] += 1
            record["step_s"] += time.time() - t0
            record["start"], record["end"] = min(record["start"], t0), time.time()
            error = future.exception() or future.result()
            if error is None:
                finished.add(st)
            else:
                failed.append((st, str(error)))
            bar.update(1)
            bar.set_postfix_str(f"{st.kind} {st.label}")
    bar.close()
    return failed


def _run_inline(cfg, results, config_path, todo, workers, timings):
    def run(step: Step) -> str | None:
        try:
            runner.run_step(cfg, results, step)
        except Exception as err:  # noqa: BLE001 - one failed step must not stop the others
            return user_message(err) or traceback.format_exc(limit=3)
        return None

    with ThreadPoolExecutor(1) as pool:
        return _schedule(cfg, results, todo, 1, lambda st: pool.submit(run, st), timings)


def _run_notebooks(cfg, results, config_path, todo, workers, timings):
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return _schedule(cfg, results, todo, workers,
                         lambda st: pool.submit(run_notebook, config_path, results, st, threads), timings)


def run_notebook(config_path: Path, results: Path, step: Step, threads: int | None = None) -> str | None:
    """Execute the step's run notebook with papermill; keep the executed copy in the step's folder.

    The notebook runs in this process's warm kernel (kernels.WarmKernel): a worker pays kernel start-up and
    imports once, not once per step. Returns None on success, else the path of the executed (failed) notebook.
    """
    from .config import load_config

    if threads:
        os.environ["MAGIC_THREADS"] = str(threads)
    cfg = load_config(str(config_path))
    logs = results / "notebooks"
    logs.mkdir(parents=True, exist_ok=True)
    executed = logs / f"{step.kind}_{step.label}.ipynb"
    params = {"config_path": str(config_path), "results_dir": str(results), "mixture": step.mixture,
              "scale": step.scale, "seed": step.seed}
    if step.stage:
        params["stage"] = step.stage
    try:
        _warm_kernel().execute(NOTEBOOKS / f"{step.kind}.ipynb", executed, params, NOTEBOOKS)
    except Exception:  # noqa: BLE001 - papermill raises many kinds; the notebook holds the traceback
        return str(executed)
    folder = steps.step_dir(cfg, results, step)
    os.replace(executed, folder / "run.ipynb")
    return None


@functools.cache
def _warm_kernel():
    """This process's kernel for run notebooks, started with its first step (and its $MAGIC_THREADS)."""
    from .kernels import WarmKernel

    return WarmKernel()
