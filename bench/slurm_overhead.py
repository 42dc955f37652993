"""Slurm overhead: the seconds of a smoke task that are not its step, with and without run notebooks.

Runs one mixture of the smoke preset at its two scales (data job + pretrain, sft, evaluate PT and SFT) through a
real Slurm cluster twice, `slurm.notebooks=false` (the step in the task's child process) and `true` (through
the papermill run notebook), and prints per task: the job's wall time (Slurm's start to submitit's end),
the step's own time (run.json `seconds`), the difference, and how much of it comes before submitit starts
(srun and the job's interpreter). On shared cores wall times stretch with the load, so it also measures the
CPU seconds (user + system) of each start-up piece on its own: the job's submitit wrapper, the step's imports
in the child, and the papermill host with its kernel. Needs a cluster: `scripts/slurm_cluster.sh start` and
`export SLURM_CONF=...`.

    .venv/bin/python bench/slurm_overhead.py [--results /tmp/slurm_overhead]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

STAMP = re.compile(r"submitit \w+ \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\)")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _slurm_times(job: str) -> tuple[dt.datetime, dt.datetime]:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout
    fields = dict(token.split("=", 1) for token in out.split() if "=" in token)
    return dt.datetime.fromisoformat(fields["StartTime"]), dt.datetime.fromisoformat(fields["EndTime"])


def _submitit_span(log_out: Path) -> tuple[dt.datetime, dt.datetime]:
    stamps = [dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in STAMP.finditer(log_out.read_text())]
    return stamps[0], stamps[-1]


def run(results: Path, notebooks: bool) -> pd.DataFrame:
    if results.exists():
        shutil.rmtree(results)
    cmd = [sys.executable, "-m", "magiclib.cli", "study", "--preset", "smoke", "--results", str(results),
           "--executor", "slurm", "--wait", "mixtures=[V1-P0]", f"slurm.notebooks={str(notebooks).lower()}"]
    subprocess.run(cmd, check=True, env={**os.environ, "MAGIC_SLURM_POLL_S": "2"})
    rows = []
    for key, entry in json.loads((results / "slurm" / "jobs.json").read_text()).items():
        err = Path(entry["log"])
        start, end = _slurm_times(entry["job"])
        first, last = _submitit_span(err.with_name(err.name.replace(".err", ".out")))
        record = results / key / "run.json"
        step_s = json.loads(record.read_text())["seconds"] if record.exists() else None
        wall = (last - start).total_seconds()
        rows.append({"notebooks": notebooks, "task": entry["array"], "job_wall_s": wall,
                     "before_submitit_s": (first - start).total_seconds(), "step_s": step_s,
                     "overhead_s": None if step_s is None else wall - step_s})
    return pd.DataFrame(rows)


# What a task starts before its step: the job wrapper, the step's imports, and (with notebooks) papermill's
# host process with a fresh kernel that imports the step's modules again.
STARTUP = {
    "job wrapper (submitit + slurm_task)": "import submitit, submitit.core.submission, magiclib.slurm_task",
    "child: pretrain/sft imports": "import magiclib.cli, magiclib.runner, magiclib.train",
    "child: evaluate imports": "import magiclib.cli, magiclib.runner, magiclib.scorer, magiclib.metrics",
    "notebook: papermill host + kernel start": (
        "import nbformat, papermill, tempfile, pathlib; nb = nbformat.v4.new_notebook(cells=["
        "nbformat.v4.new_code_cell('1')]); d = pathlib.Path(tempfile.mkdtemp()); nbformat.write(nb, d / 'a.ipynb');"
        " papermill.execute_notebook(d / 'a.ipynb', d / 'b.ipynb', kernel_name='python3', progress_bar=False)"),
}


def startup_cpu(repeats: int = 3) -> pd.DataFrame:
    """CPU seconds (user + system, children included) of each start-up piece: the least of a few runs."""
    rows = []
    for name, code in STARTUP.items():
        best = float("inf")
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        rows.append({"piece": name, "cpu_s": round(best, 2)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="/tmp/slurm_overhead")
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF") and shutil.which("sbatch") is None:
        sys.exit("no Slurm cluster: run scripts/slurm_cluster.sh start and export SLURM_CONF")
    tables = [run(Path(args.results) / f"notebooks-{flag}", flag) for flag in (False, True)]
    table = pd.concat(tables, ignore_index=True)
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    print(table.round(1).to_string(index=False))
    steps = table[table.task != "data"]
    summary = steps.groupby("notebooks")[["job_wall_s", "step_s", "overhead_s", "before_submitit_s"]].mean()
    print("\nmean over the step tasks (data job aside):")
    print(summary.round(1).to_string())
    print(f"\nCPU seconds of each start-up piece (load average {os.getloadavg()}):")
    print(startup_cpu().to_string(index=False))


if __name__ == "__main__":
    main()
