"""The `magic` command: one subcommand per step of the study, plus the whole study and the book.

    magic config   --preset mini [key=value ...]     print the resolved config
    magic data     --preset mini                     build the 9 mixtures (and print their table)
    magic pretrain --preset mini --mixture V1-P0 --scale mini-s
    magic sft      --preset mini --mixture V1-P0 --scale mini-s
    magic evaluate --preset mini --mixture V1-P0 --scale mini-s --stage SFT
    magic study    --preset mini [--executor local|slurm] [--workers N] [--dry-run]
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
from .errors import user_message


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
        p = add(name, f"run one {name} step")
        p.add_argument("--mixture", required=True)
        p.add_argument("--scale", required=True)
        p.add_argument("--seed", type=int, default=None)
        if name == "evaluate":
            p.add_argument("--stage", choices=["PT", "SFT"], required=True)
        p.add_argument("--notebook", action="store_true",
                       help="run through the papermill run notebook (keeps an executed copy as the record)")
    p = add("study", "plan and run the whole grid (resumable)")
    p.add_argument("--executor", choices=["local", "inline", "slurm"], default="local",
                   help="local: papermill notebooks; inline: same steps without papermill; slurm: submitit")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: cores)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (and job scripts) only")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "analyse":  # needs no study config
        try:
            return _analyse(args.items, args.out)
        except Exception as err:
            message = user_message(err)
            if message is None:
                raise
            print(f"magic: {message}", file=sys.stderr)
            return 1
    try:
        cfg = load_config(args.preset, args.overrides)
        from .benchmarks import scored_benchmarks

        scored_benchmarks(cfg.eval)  # benchmark names are checked where the registry lives
    except ConfigError as err:
        print(f"magic: config error: {err}", file=sys.stderr)
        return 2
    if args.command == "config":
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from . import grid, runner, steps  # imported late: `magic config` stays fast
    from .results import results_dir, scores_table, write_config

    results = results_dir(cfg, args.results)
    try:
        if args.command == "data":
            print(runner.data_table(runner.run_data(cfg, results)).to_string(index=False))
        elif args.command in ("pretrain", "sft", "evaluate"):
            step = steps.Step(args.command, args.mixture, args.scale, args.seed if args.seed is not None
                              else cfg.seeds[0], getattr(args, "stage", None))
            if args.notebook:
                failed = grid.run_notebook(write_config(cfg, results), results, step)
                if failed:
                    print(f"magic: {step.kind} {step.label} failed; see {failed}", file=sys.stderr)
                    return 1
                print(steps.step_dir(cfg, results, step))
            else:
                print(runner.run_step(cfg, results, step))
        elif args.command == "study":
            print(steps.plan_summary(cfg, results))
            if args.executor == "slurm":
                from . import slurm

                return slurm.submit(cfg, results, write_config(cfg, results), dry_run=args.dry_run)
            return 0 if args.dry_run else grid.run_study(cfg, results, executor=args.executor,
                                                         workers=args.workers)
        elif args.command == "scores":
            scores_table(cfg, results).to_csv(sys.stdout, index=False)
        elif args.command == "book":
            from . import book

            print(book.build_book(cfg, results))
    except ConfigError as err:
        print(f"magic: config error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `magic scores | head` closed the pipe: not an error
        sys.stderr.close()
    except Exception as err:
        message = user_message(err)
        if message is None:  # a bug: its traceback is what a report needs
            raise
        print(f"magic: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
