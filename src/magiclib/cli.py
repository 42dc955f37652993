"""The `magic` command: one subcommand per step of the study, plus the whole study and the book.

    magic config   --preset mini [key=value ...]     print the resolved config
    magic data     --preset mini                     build the 9 mixtures (and print their table)
    magic pretrain --preset mini --mixture V1-P0 --scale mini-s
    magic sft      --preset mini --mixture V1-P0 --scale mini-s
    magic evaluate --preset mini --mixture V1-P0 --scale mini-s --stage SFT
    magic evaluate --model DIR_OR_HUB_ID [--benchmarks ...] [--limit N | --sample N] [--out DIR]
    magic evaluate --manifest checkpoints.yaml --results DIR   score a model family trained elsewhere
    magic study    --preset mini [--executor local|slurm] [--workers N] [--dry-run] [--wait]
    magic status   --preset mini                     per stage: done, queued, running, failed (with logs)
    magic scores   --preset mini                     the scores table as CSV on stdout
    magic book     --preset mini                     execute the chapters and build the HTML book
    magic analyse  --items items.parquet [--out DIR]  noise-aware transfer tables of any per-item table (CSV)

Every subcommand takes `key.path=value` overrides after its flags (e.g. `eval.items_per_benchmark=50`).
A mistake the user can fix (a bad config, a missing mirror, a corrupt checkpoint, a full disk) ends in a
one-line `magic: ...` message and a non-zero exit; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .config import ConfigError, load_config, to_dict
from .errors import BadValue, UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magic", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--preset", default="mini", help="configs/<preset>.yaml or a YAML path (default: mini)")
        p.add_argument("--results", default=None, help="results folder (default: results/<preset>)")
        p.add_argument("overrides", nargs="*", help="key.path=value overrides")
        return p

    add("config", "print the resolved config")
    add("data", "build tokenizer, filtered pools and the mixtures' token shards")
    for name in ("pretrain", "sft", "evaluate"):
        p = add(name, f"run one {name} step" + (" (or score --model / --manifest checkpoints)" if name == "evaluate"
                                                else ""))
        p.add_argument("--mixture", required=name != "evaluate")
        p.add_argument("--scale", required=name != "evaluate")
        p.add_argument("--seed", type=int, default=None, help="the run's seed (with --sample: the sample's)")
        if name == "evaluate":
            p.add_argument("--stage", choices=["PT", "SFT"])
            _add_checkpoint_options(p)
        p.add_argument("--notebook", action="store_true",
                       help="run through the papermill run notebook (keeps an executed copy as the record)")
    p = add("study", "plan and run the whole grid (resumable)")
    p.add_argument("--executor", choices=["local", "inline", "slurm"], default="local",
                   help="local: papermill notebooks; inline: same steps without papermill; slurm: submitit")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: cores)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (and job scripts) only")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then assemble the tables")
    add("status", "per stage, the steps done, queued, running and failed (with each failure's log and error)")
    add("scores", "print the assembled scores table as CSV")
    add("book", "execute the chapter notebooks against the results and build the HTML book")
    p = sub.add_parser("analyse", help="transfer tables (naive, split, corrected, mixture-component r, verdicts) "
                       "of a per-item table; schema: magiclib.analysis.items")
    p.add_argument("--items", required=True, help="per-item table, .parquet or .csv (one row per run, item, choice)")
    p.add_argument("--out", default=None, help="folder for transfer.csv and planning.csv (default: beside --items)")
    return parser


def _analyse(items: str, out: str | None) -> int:
    from pathlib import Path

    from . import io
    from .analysis.audit import planning_table, transfer_audit
    from .analysis.items import read_items

    folder = Path(out) if out else Path(items).parent / "analysis"
    audit = transfer_audit(read_items(items))
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in (("transfer", audit), ("planning", planning_table(audit))):
        io.write_text(folder / f"{name}.csv", table.to_csv(index=False))
        print(folder / f"{name}.csv")
    return 0


def _add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    """`magic evaluate --model DIR_OR_HUB_ID | --manifest FILE`: score checkpoints trained elsewhere."""
    p.add_argument("--model", default=None, help="a causal LM folder (save_pretrained, safetensors) or hub id")
    p.add_argument("--manifest", default=None, help="YAML/CSV of checkpoints: mixture, scale, stage, seed, path "
                   "(scored into --results like a study)")
    p.add_argument("--benchmarks", nargs="+", default=None, help="default: the study's 20")
    p.add_argument("--limit", type=int, default=None, help="the first N items of each benchmark (lm-eval's --limit)")
    p.add_argument("--sample", type=int, default=None, help="a fixed-seed subsample of N items (seed: --seed)")
    p.add_argument("--out", default=None, help="--model's output folder (default: results/models/<name>)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: autocast, log-softmax in fp32; auto: bf16 on cuda, fp32 on cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--batch-size", type=int, default=32, help="most items per forward pass")


def _evaluate_checkpoints(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import evaluate, paths

    chosen = evaluate.selection(args.benchmarks, args.limit, args.sample, args.seed or 0)
    options = {"device": args.device, "dtype": args.dtype, "threads": args.threads, "batch_size": args.batch_size}
    if args.model:
        out = Path(args.out) if args.out else paths.results_root("models") / Path(str(args.model)).name
        print(evaluate.evaluate_model(args.model, out, chosen, **options))
    else:
        results = Path(args.results) if args.results else paths.results_root(Path(args.manifest).stem)
        evaluate.evaluate_manifest(args.manifest, results, chosen, **options)
        print(results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as err:
        print(f"magic: config error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `magic scores | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    except UserError as err:  # a mistake the user can fix; anything else is a bug and keeps its traceback
        print(f"magic: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "evaluate" and (args.model or args.manifest):  # checkpoints from elsewhere: no study config
        if args.model and args.manifest:
            raise BadValue("give --model (one checkpoint) or --manifest (a list of them), not both")
        return _evaluate_checkpoints(args)
    if args.command == "evaluate" and not (args.mixture and args.scale and args.stage):
        print("magic: evaluate needs --mixture, --scale and --stage (a step of the study), or --model DIR_OR_HUB_ID, "
              "or --manifest FILE", file=sys.stderr)
        return 2
    if args.command == "analyse":  # needs no study config
        return _analyse(args.items, args.out)
    from .benchmarks import scored_benchmarks

    cfg = load_config(args.preset, args.overrides)
    scored_benchmarks(cfg.eval)  # benchmark names are checked where the registry lives
    if args.command == "config":
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from . import grid, runner, steps  # imported late: `magic config` stays fast
    from .results import results_dir, scores_table, write_config

    results = results_dir(cfg, args.results)
    if args.command == "data":
        print(runner.data_table(runner.run_data(cfg, results)).to_string(index=False))
    elif args.command in ("pretrain", "sft", "evaluate"):
        step = steps.Step(args.command, args.mixture, args.scale, args.seed if args.seed is not None
                          else cfg.scale_seeds(args.scale)[0], getattr(args, "stage", None))
        if args.notebook:
            failed = grid.run_notebook(write_config(cfg, results), results, step)
            if failed:
                print(f"magic: {step.kind} {step.label} failed; see {failed}", file=sys.stderr)
                return 1
            print(steps.step_dir(cfg, results, step))
        else:
            print(runner.run_step(cfg, results, step))
    elif args.command == "study":
        if args.executor == "slurm":
            from . import slurm

            cfg = slurm.cluster_config(cfg)  # precisions for the cluster's nodes: they key the steps' folders
            print(steps.plan_summary(cfg, results))
            return slurm.submit(cfg, results, dry_run=args.dry_run, wait=args.wait)
        print(steps.plan_summary(cfg, results))
        return 0 if args.dry_run else grid.run_study(cfg, results, executor=args.executor,
                                                     workers=args.workers)
    elif args.command == "status":
        from . import slurm

        return slurm.status(cfg, results)
    elif args.command == "scores":
        scores_table(cfg, results).to_csv(sys.stdout, index=False)
    elif args.command == "book":
        from . import book

        print(book.build_book(cfg, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
