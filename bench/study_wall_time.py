"""Wall time of a whole study, per stage and in total, with CPU utilisation.

Runs `magic study` for a preset into a fresh results folder (or reads the `timings.json` an earlier run left
with --from), then prints: per stage (data, pretrain, sft, evaluate) the number of steps, the wall time from
the stage's first start to its last end, the summed step time, and per scale the mean seconds of a step; the
total wall time; and CPU seconds / (wall seconds x cores). Writes a JSON record to bench/out/.

    python bench/study_wall_time.py [--preset mini] [--workers 2] [--from results/mini]
    python bench/study_wall_time.py --results /tmp/mini-bf16 train.precision=bf16 eval.precision=bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--executor", default="local", choices=["local", "inline"])
    parser.add_argument("--from", dest="existing", default=None, help="report an existing results folder's last run")
    parser.add_argument("--results", default=None, help="a fresh results folder (default: a new temporary one)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides for `magic study`")
    args = parser.parse_args()
    if args.existing:
        results = Path(args.existing)
    else:
        results = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix=f"study-{args.preset}-"))
        command = [sys.executable, "-m", "magiclib.cli", "study", "--preset", args.preset, "--results", str(results),
                   "--executor", args.executor] + (["--workers", str(args.workers)] if args.workers else [])
        command += args.overrides
        subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    timings = json.loads((results / "timings.json").read_text())
    stages = pd.DataFrame(timings["stages"]).T
    runs = pd.read_parquet(results / "tables" / "runs.parquet")
    per_scale = runs.groupby(["kind", "scale"])["seconds"].agg(["count", "mean", "max"]).round(1)
    print(f"{args.preset}: {results} ({timings['executor']}, {timings['workers']} worker(s), "
          f"{timings['cores']} cores, {platform.machine()})")
    print(stages.to_string())
    print("\nseconds per run (inside the step, from run.json):")
    print(per_scale.to_string())
    print(f"\ntotal wall time {timings['total_s'] / 60:.1f} min; CPU {timings['cpu_s']:.0f} s = "
          f"{timings['cpu_utilisation']:.0%} of {timings['cores']} cores")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"study_wall_time_{Path(args.preset).stem}.json").write_text(json.dumps(
        {**timings, "results": str(results), "per_run": per_scale.reset_index().to_dict("records")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
