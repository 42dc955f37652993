"""Scoring checkpoints that were not trained by a study: any Hugging Face causal LM, or a manifest of them.

`evaluate_model` loads one causal LM in HF format (a local folder or a hub id; safetensors only, never
remote code), scores the chosen benchmarks with the study's scorer and writes, into one folder built under
a temporary name and renamed into place:

    items.parquet / .csv     one row per item and choice: log-likelihood, tokens, characters, gold
    per_item.parquet / .csv  one row per item: prediction, correctness, confidence, gold probability
    scores.parquet / .csv    one row per benchmark: acc, acc_norm, primary accuracy, calibration
    run.json                 the model (path and hash of its files), items chosen, precision, versions

Items are chosen as lm-evaluation-harness does with `--limit N` (the first N rows of the evaluated split),
or as the study does (`sample`: a fixed-seed subsample), or all rows.

`evaluate_manifest` scores a list of checkpoints with their run keys (mixture, scale, stage, seed, path),
for a model family trained elsewhere, into a results folder laid out like a study's: one run folder per
checkpoint under runs/evaluate/ (skipped when already scored) and the assembled tables under tables/, with
the same run keys, so `magic scores`, the analysis and the book read it as they read the study's own.
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import yaml

from . import benchmarks, io, metrics
from .errors import BadValue, MissingFile, NotReady

MANIFEST_FILE = "manifest.yaml"  # the normalised manifest a results folder was scored from (its marker)
MANIFEST_KEYS = ("mixture", "scale", "stage", "seed", "path")
DEVICES = ("cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Selection:
    """Which items of each benchmark: the first `limit` rows (lm-eval's --limit), a fixed-seed `sample`, or all."""

    benchmarks: tuple[str, ...]
    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.limit is not None and self.sample is not None:
            raise BadValue("give --limit N (the first N items) or --sample N (a seeded subsample), not both")
        for name, value in (("limit", self.limit), ("sample", self.sample)):
            if value is not None and value < 1:
                raise BadValue(f"--{name} {value}; give a positive number of items per benchmark")
        for name in self.benchmarks:
            benchmarks.get(name)  # an unknown name fails here, before any model is loaded

    def items(self) -> list[benchmarks.Item]:
        chosen = []
        for name in self.benchmarks:
            rows = benchmarks.load_items(name)
            wanted = self.limit or self.sample
            if wanted is not None and wanted > len(rows):
                flag = "--limit" if self.limit else "--sample"
                raise BadValue(f"{flag} {wanted} is larger than {name}'s evaluated split ({len(rows)} items); "
                               f"give at most {len(rows)}, or leave {flag} out to score every item")
            if self.limit is not None:
                rows = rows[:self.limit]
            elif self.sample is not None:
                keep = set(benchmarks.subsample(len(rows), self.sample, self.seed))
                rows = [row for index, row in enumerate(rows) if index in keep]
            chosen += rows
        return chosen


def selection(names: list[str] | None, limit: int | None = None, sample: int | None = None,
              seed: int = 0) -> Selection:
    return Selection(tuple(names or benchmarks.STUDY_BENCHMARKS), limit, sample, seed)


# --- the model ---------------------------------------------------------------------------------------


def model_files(spec: str | Path) -> Path:
    """The local folder of a model given as a folder or a hub id (downloaded to the HF cache if needed),
    refused with the fix when it is not a causal LM in HF format with safetensors weights."""
    path = Path(spec)
    if not path.exists():
        if str(spec).count("/") != 1 or str(spec).startswith(("/", ".")):
            raise MissingFile(f"{spec} is neither a folder nor a hub id (owner/name); give the folder a model "
                              "was saved to with save_pretrained, or a Hugging Face hub id")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(str(spec), allow_patterns=["*.json", "*.safetensors", "*.model",
                                                                      "*.txt", "*.jinja", "*.tiktoken"]))
        except Exception as err:  # noqa: BLE001 - offline, unknown repo, gated: all say the same to the user
            raise MissingFile(f"cannot fetch {spec} from the Hugging Face hub ({type(err).__name__}); check the id, "
                              "unset HF_HUB_OFFLINE, or download it and pass its folder") from None
    if not path.is_dir() or not (path / "config.json").exists():
        raise BadValue(f"{path} is not a model folder (no config.json); give a folder a causal LM was saved to "
                       "with save_pretrained (config.json, *.safetensors, tokenizer files)")
    if not sorted(path.glob("*.safetensors")):
        found = ", ".join(sorted(p.name for p in path.glob("*.bin"))) or "none"
        raise BadValue(f"{path} has no *.safetensors weights (pickled weights found: {found}); this scorer loads "
                       "safetensors only: convert with `model.save_pretrained(folder, safe_serialization=True)`")
    return path


def files_hash(folder: Path) -> str:
    """sha256 over the model's config, weights and tokenizer files (names and bytes), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors",
                                                                                   ".model", ".txt", ".jinja")):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**24), b""):
                digest.update(block)
    return digest.hexdigest()


def count_parameters(folder: Path) -> int:
    """Parameters stored in the safetensors files (read from their headers, no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return total


def load_model(folder: Path, device: str = "cpu"):
    """The causal LM (fp32 master weights) and its tokenizer; a one-line error where transformers refuses."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device not in DEVICES:
        raise BadValue(f"--device {device}; choose one of {DEVICES}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadValue("--device cuda, but torch sees no GPU here; use --device cpu")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadValue(f"transformers cannot load {folder} as a causal LM with its tokenizer ({first}); it needs "
                       "a model type transformers knows (no remote code) and tokenizer files") from None
    return model.to(device).eval(), tokenizer


def resolve_dtype(dtype: str, device: str) -> str:
    """auto: bf16 autocast on a GPU, fp32 on a CPU (log-likelihoods as lm-eval computes them)."""
    if dtype not in DTYPES:
        raise BadValue(f"--dtype {dtype}; choose one of {DTYPES}")
    return dtype if dtype != "auto" else ("bf16" if device == "cuda" else "fp32")


# --- one model ---------------------------------------------------------------------------------------


def score_folder(folder: Path, items: list[benchmarks.Item], device: str, precision: str, batch_size: int,
                 max_length: int | None, progress: bool = True) -> pd.DataFrame:
    from . import scorer

    model, tokenizer = load_model(folder, device)
    return scorer.score_items(model, tokenizer, items, batch_size=batch_size, max_length=max_length,
                              progress=progress, precision=precision)


def write_tables(out: Path, items: pd.DataFrame, formats: tuple[str, ...] = ("parquet", "csv")) -> pd.DataFrame:
    """The items, per-item and scores tables of one model into `out`; returns the scores."""
    scores = metrics.score_table(items)
    for name, table in (("items", items), ("per_item", metrics.item_table(items)), ("scores", scores)):
        if "parquet" in formats:
            io.write_parquet(out / f"{name}.parquet", table)
        if "csv" in formats:
            io.write_text(out / f"{name}.csv", table.to_csv(index=False))
    return scores


def evaluate_model(spec: str | Path, out: str | Path, chosen: Selection, *, device: str = "cpu",
                   dtype: str = "auto", threads: int | None = None, batch_size: int = 32,
                   max_length: int | None = None, progress: bool = True) -> Path:
    """Score one causal LM (folder or hub id) on the chosen items; write its tables and run record to `out`."""
    import torch

    started = time.time()
    folder = model_files(spec)
    precision = resolve_dtype(dtype, device)
    if threads:
        torch.set_num_threads(threads)
    items = chosen.items()
    table = score_folder(folder, items, device, precision, batch_size, max_length, progress)
    digest = files_hash(folder)
    out = Path(out)
    with io.atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        scores = write_tables(tmp, table)
        io.finish_run(tmp, kind="evaluate-model", config=_record_config(chosen, device, precision, batch_size,
                                                                        max_length, threads),
                      config_hash=digest, seed=chosen.seed, started=started,
                      model={"spec": str(spec), "path": str(folder.resolve()), "sha256": digest,
                             "n_params": count_parameters(folder)},
                      items_chosen={name: [i.item_id for i in items if i.benchmark == name]
                                    for name in chosen.benchmarks},
                      summary={"items": len({(i.benchmark, i.item_id) for i in items}),
                               "benchmarks": len(chosen.benchmarks),
                               "mean_accuracy": float(scores["accuracy"].mean())})
    return out


def _record_config(chosen: Selection, device: str, precision: str, batch_size: int, max_length: int | None,
                   threads: int | None) -> dict:
    return {**asdict(chosen), "device": device, "precision": precision, "batch_size": batch_size,
            "max_length": max_length, "threads": threads}


# --- a manifest of checkpoints -----------------------------------------------------------------------


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The checkpoints of a manifest (YAML: a list of mappings, or `checkpoints:` holding one; or CSV),
    one row each with mixture, scale, stage (PT | SFT), seed, path (relative paths from the manifest's folder)
    and any extra keys (e.g. code_share); refused with the fix when a key is missing or a run repeats."""
    path = Path(path)
    if not path.exists():
        raise MissingFile(f"manifest {path} not found")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows = data.get("checkpoints") if isinstance(data, dict) else data
    else:
        raise BadValue(f"manifest {path}: give a .yaml/.yml or .csv file")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise BadValue(f"manifest {path} lists no checkpoints; write one mapping (YAML) or row (CSV) per checkpoint "
                       f"with keys {', '.join(MANIFEST_KEYS)}")
    frame = pd.DataFrame(rows)
    missing = [k for k in MANIFEST_KEYS if k not in frame.columns or frame[k].isna().any()]
    if missing:
        raise BadValue(f"manifest {path}: every checkpoint needs {', '.join(MANIFEST_KEYS)}; missing {missing}")
    frame = frame.astype({"mixture": str, "scale": str, "stage": str, "path": str})
    bad = sorted(set(frame["stage"]) - {"PT", "SFT"})
    if bad:
        raise BadValue(f"manifest {path}: stage must be PT or SFT, not {bad}")
    try:
        frame["seed"] = frame["seed"].astype(int)
    except (TypeError, ValueError):
        raise BadValue(f"manifest {path}: seed must be an integer in every row") from None
    repeated = frame[frame.duplicated(["mixture", "scale", "stage", "seed"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise BadValue(f"manifest {path}: run {first['mixture']} {first['scale']} {first['stage']} seed "
                       f"{first['seed']} appears {len(repeated)} times; give each run one checkpoint")
    frame["path"] = [str(p if Path(p).is_absolute() or not (path.parent / p).exists() else path.parent / p)
                     for p in frame["path"]]
    return frame.reset_index(drop=True)


def run_label(row: pd.Series) -> str:
    return f"{row['mixture']}_{row['scale']}_{row['stage']}_s{row['seed']}"


def evaluate_manifest(manifest: str | Path, results: str | Path, chosen: Selection, *, device: str = "cpu",
                      dtype: str = "auto", threads: int | None = None, batch_size: int = 32,
                      max_length: int | None = None, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Score every checkpoint of `manifest` into `results` (resumable: a scored checkpoint is kept) and
    assemble the study-shaped tables (runs, scores, items) from the run folders."""
    import torch

    results = Path(results)
    runs = read_manifest(manifest)
    folders = [model_files(p) for p in runs["path"]]  # every path is checked before anything is scored
    precision = resolve_dtype(dtype, device)
    if threads:
        torch.set_num_threads(threads)
    items = chosen.items()
    io.write_text(results / MANIFEST_FILE, yaml.safe_dump(
        {"selection": asdict(chosen) | {"benchmarks": list(chosen.benchmarks)}, "precision": precision,
         "checkpoints": runs.to_dict("records")}, sort_keys=False))
    for (_, row), folder in zip(runs.iterrows(), folders, strict=True):
        run_dir = _run_dir(results, row, folder, chosen, precision)
        if io.is_finished(run_dir):
            continue
        started = time.time()
        print(f"[evaluate] {run_label(row)} <- {folder}", flush=True)
        table = score_folder(folder, items, device, precision, batch_size, max_length, progress)
        with io.atomic_path(run_dir) as tmp:
            tmp.mkdir(parents=True)
            io.write_parquet(tmp / "items.parquet", table)
            scores = metrics.score_table(table)
            io.write_parquet(tmp / "scores.parquet", scores)
            io.finish_run(tmp, kind="evaluate", config=_record_config(chosen, device, precision, batch_size,
                                                                      max_length, threads),
                          config_hash=run_dir.name.rsplit("-", 1)[1], seed=int(row["seed"]), started=started,
                          step={"kind": "evaluate", "mixture": row["mixture"], "scale": row["scale"],
                                "seed": int(row["seed"]), "stage": row["stage"]},
                          model={"path": str(folder.resolve()), "sha256": files_hash(folder),
                                 "n_params": count_parameters(folder)},
                          summary={"items": int(table["item"].nunique()), "benchmarks": int(scores.shape[0]),
                                   "mean_accuracy": float(scores["accuracy"].mean())})
    return assemble_manifest_tables(results)


def _run_dir(results: Path, row: pd.Series, folder: Path, chosen: Selection, precision: str) -> Path:
    from .config import config_hash

    digest = config_hash(files_hash(folder), asdict(chosen), precision)
    return results / "runs" / "evaluate" / f"{run_label(row)}-{digest}"


def assemble_manifest_tables(results: str | Path, write: bool = True) -> dict[str, pd.DataFrame]:
    """runs, scores and items tables of a manifest's results folder, with the study's run keys in front."""
    results = Path(results)
    path = results / MANIFEST_FILE
    if not path.exists():
        raise NotReady(f"{path} not found: score a manifest first (`magic evaluate --manifest FILE --results "
                       f"{results}`)")
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    chosen = Selection(tuple(manifest["selection"]["benchmarks"]), manifest["selection"]["limit"],
                       manifest["selection"]["sample"], manifest["selection"]["seed"])
    runs, scores, items = [], [], []
    for record in manifest["checkpoints"]:
        row = pd.Series(record)
        folder = model_files(row["path"])
        run_dir = _run_dir(results, row, folder, chosen, manifest["precision"])
        if not io.is_finished(run_dir):
            continue
        run = io.read_json(run_dir / io.RUN_RECORD)
        keys = run_keys(row, run["model"]["n_params"])
        runs.append({"kind": "evaluate", **keys, "folder": str(run_dir.relative_to(results)),
                     "seconds": run.get("seconds"), "git_commit": run.get("git_commit"),
                     **{f"summary_{k}": v for k, v in (run.get("summary") or {}).items()}})
        scores.append(pd.read_parquet(run_dir / "scores.parquet").assign(**keys))
        items.append(pd.read_parquet(run_dir / "items.parquet").assign(**keys))
    tables = {"runs": pd.DataFrame(runs), "scores": _front(scores), "items": _front(items),
              "losses": pd.DataFrame()}
    if write:
        io.remove_temporaries(results / "tables")
        for name, frame in tables.items():
            io.write_parquet(results / "tables" / f"{name}.parquet", frame)
    return tables


def run_keys(row: pd.Series, n_params: int) -> dict:
    """The study's run keys of a manifest row: a study-style mixture name (V1-P0) gives web source and
    proportions; other names stand for themselves. code_share comes from the manifest when it has one."""
    web, _, props = str(row["mixture"]).partition("-")
    code_share = row.get("code_share")
    return {"mixture": row["mixture"], "web_source": web, "proportions": props or row["mixture"],
            "code_share": float(code_share) if code_share is not None and not pd.isna(code_share) else float("nan"),
            "scale": row["scale"], "n_params": int(n_params), "stage": row["stage"], "seed": int(row["seed"])}


def _front(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    from .results import RUN_KEYS

    frame = pd.concat(frames, ignore_index=True)
    return frame[RUN_KEYS + [c for c in frame.columns if c not in RUN_KEYS]]
