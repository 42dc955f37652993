"""Data-step throughput and memory at any corpus size: the project's data step against the bare tokenizer.

    python bench/data_throughput.py corpus --out /tmp/h8/corpus-1B --tokens 1e9
    python bench/data_throughput.py run --corpus /tmp/h8/corpus-1B --tokenizer <results>/data/tokenizer-<h> \
        --work /tmp/h8/work --processes 1 2

`corpus` writes a corpus in the hub's (and the mirror's) format, gzip'd JSONL of {"id", "text", "source"},
made of the mirror's pretraining pools repeated until the token estimate is reached; every repeat rotates
each document's lines, so no two documents are equal (the step measured here does not deduplicate).

`run` measures, for each number of processes P, side by side in one run:
- the limit: the same tokenizer on the same text, `encode_batch_fast` in P processes, timing only the calls
  (reading and decompressing are left out), each process one thread (TOKENIZERS_PARALLELISM=false);
- the data step as the study runs it, in P datatrove tasks of one thread each: the pools step's hub path
  (`pools.hub_pool`: the corpus streamed by `datasets` as a hub dataset, all of it sampled, decontaminated
  against the study's 20 benchmarks, written as a pool folder; the benchmarks' n-gram index is built first,
  inside the timing), tokenize the documents a mixture draws (`mixtures.draw_tokens`: PoolRowsReader +
  TokenizeToStore), and write the mixture's shuffled token shards (`gather`, `write_shards`); the mixture
  asks for all the corpus' tokens, so every document is tokenized once;
- peak resident memory of the step: the largest sum of RSS over its process tree, sampled every 0.2 s.
`--limit-files N` times the bare tokenizer on the first N files only (for a corpus too large to time twice);
give the mixture's size with `--target` then, or it is the first N files' tokens.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHARS_PER_TOKEN = 2.7  # the mini BPE over the mirror's pools (measured): only for the corpus-size estimate
DOCS_PER_FILE = 2_000
ONE_THREAD = {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def make_corpus(out: Path, tokens: float) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from magiclib import paths

    mirror = paths.find_mirror()
    if mirror is None:
        sys.exit("no data mirror found: set $MAGIC_DATA or put shared/data beside the repository")
    docs = []
    for file in sorted((mirror / "pretrain").glob("*/*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as f:
            docs += [json.loads(line) for line in f]
    # Mixed order: every file (a reading task's share) holds all pools, long books and short tweets alike.
    docs = [docs[i] for i in np.random.default_rng(0).permutation(len(docs))]
    out.mkdir(parents=True, exist_ok=True)
    written, chars, file_no, batch = 0, 0, 0, []
    for repeat in range(10**6):
        for doc in docs:
            lines = doc["text"].split("\n")
            shift = repeat % len(lines)
            text = "\n".join(lines[shift:] + lines[:shift]) if shift else doc["text"]
            if repeat and len(lines) == 1:
                words = text.split(" ")
                shift = repeat % len(words)
                text = " ".join(words[shift:] + words[:shift])
            batch.append(json.dumps({"id": f"{doc['id']}#{repeat}", "text": text, "source": doc["source"]}))
            chars += len(text)
            written += 1
            if len(batch) == DOCS_PER_FILE:
                _write_gz(out / f"{file_no:05d}.jsonl.gz", batch)
                file_no, batch = file_no + 1, []
                print(f"{file_no} files, {written} docs, ~{chars / CHARS_PER_TOKEN / 1e6:.0f}M tokens", flush=True)
            if chars / CHARS_PER_TOKEN >= tokens:
                break
        if chars / CHARS_PER_TOKEN >= tokens:
            break
    if batch:
        _write_gz(out / f"{file_no:05d}.jsonl.gz", batch)


def _write_gz(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


# --- the limit: the bare tokenizer -----------------------------------------------------------------------


def _raw_worker(args) -> tuple[int, float]:
    files, tokenizer_file = args
    sys.path.insert(0, str(ROOT / "src"))
    from datatrove.data import Document
    from tokenizers import Tokenizer

    from magiclib.data.blocks import TOKENIZE_BATCH_CHARS, TOKENIZE_BATCH_DOCS, text_batches

    tokenizer = Tokenizer.from_file(tokenizer_file)
    tokens, seconds = 0, 0.0
    for file in files:
        with gzip.open(file, "rt", encoding="utf-8") as f:
            docs = [Document(text=json.loads(line)["text"], id="") for line in f]
        for batch in text_batches(docs, TOKENIZE_BATCH_DOCS, TOKENIZE_BATCH_CHARS):  # the data step's batches
            texts = [d.text for d in batch]
            start = time.perf_counter()
            encoded = tokenizer.encode_batch_fast(texts)
            seconds += time.perf_counter() - start
            tokens += sum(len(e.ids) for e in encoded) + len(encoded)  # + the eos the data step appends
    return tokens, seconds


def raw_throughput(files: list[Path], tokenizer_file: Path, processes: int) -> tuple[int, float]:
    """(tokens, tokens/s) of `processes` one-thread processes, each on its share of the files."""
    shares = [([str(f) for f in files[r::processes]], str(tokenizer_file)) for r in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_raw_worker, shares)
    tokens = sum(t for t, _ in results)
    return tokens, tokens / max(s for _, s in results)


# --- the data step ---------------------------------------------------------------------------------------


def data_step(corpus: Path, tokenizer_dir: Path, work: Path, tasks: int, target: int) -> dict:
    """Corpus -> pool -> tokens of a mixture that takes all of it; runs in its own process (see `run`)."""
    sys.path.insert(0, str(ROOT / "src"))
    import shutil

    from magiclib.data import blocks, decontam, mixtures, pools, shards, stages
    from magiclib.data.sources import PoolSource

    shutil.rmtree(work, ignore_errors=True)
    clock = time.time()  # the parent splits its memory samples by stage with this
    started = time.perf_counter()
    index = decontam.NgramIndex.from_texts(decontam.study_benchmark_texts(13), 13)
    index_s = time.perf_counter() - started
    corpus_source = PoolSource(str(corpus), None, "train", None, "text")  # a local folder read as a hub dataset
    pool_dir = pools.hub_pool(work, "corpus", corpus_source, None, index, stages.Report(work / "tallies"), tasks)
    pool_s = time.perf_counter() - started
    tokenizer = mixtures.StudyTokenizer(tokenizer_dir)
    store = shards.TokenStore(work / "store", blocks.pool_rows(pool_dir), tokenizer.dtype)
    pool = mixtures.PoolStore(pool_dir, store, tokenizer)
    rows = mixtures.draw_tokens(pool, target, np.random.default_rng(0), tasks)
    tokenize_s = time.perf_counter() - started - pool_s
    order = np.random.default_rng(1).permutation(len(rows))
    written = shards.write_shards(work / "mixture", mixtures.gather([pool], [rows], {"all": ("web", target)},
                                                                     order), target, tokenizer.dtype)
    total_s = time.perf_counter() - started
    return {"tokens": target, "docs": len(rows), "clock": clock, "index_s": index_s, "pool_s": pool_s,
            "tokenize_s": tokenize_s,
            "write_s": total_s - pool_s - tokenize_s, "seconds": total_s, "shards": len(written),
            "tokenized_docs": int((store.length >= 0).sum()), "pool_docs": len(store.length),
            "tokenized_tokens": int(store.length[store.length >= 0].sum())}


def _tree_rss(pid: int) -> list[tuple[str, int]]:
    """(name, RSS) of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in procs:
        try:
            out.append((" ".join(proc.cmdline()[1:3])[-40:], proc.memory_info().rss))
        except psutil.NoSuchProcess:
            pass
    return out


def measured_step(args, tasks: int, target: int) -> tuple[dict, int]:
    """The data step in a child process; returns its record and the peak RSS of its process tree (and
    prints the peak of each stage, with the processes that made it up)."""
    command = [sys.executable, __file__, "step", "--corpus", str(args.corpus), "--tokenizer", str(args.tokenizer),
               "--work", str(args.work), "--tasks", str(tasks), "--target", str(target)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, **ONE_THREAD})
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.time(), _tree_rss(child.pid)))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode:
        sys.exit(f"the data step failed (exit {child.returncode})")
    record = json.loads(out.decode().strip().splitlines()[-1])
    bounds = np.cumsum([record["clock"], record["pool_s"], record["tokenize_s"], record["write_s"]])
    for stage, lo, hi in zip(("pool", "tokenize", "write"), bounds[:-1], bounds[1:], strict=True):
        inside = [procs for t, procs in samples if lo <= t <= hi] or [[]]
        top = max(inside, key=lambda procs: sum(rss for _, rss in procs))
        print(f"  peak RSS in {stage}: {sum(r for _, r in top) / 2**20:.0f} MiB = "
              + ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in top), flush=True)
    return record, max(sum(rss for _, rss in procs) for _, procs in samples)


def run(args) -> None:
    os.environ.update(ONE_THREAD)
    files = sorted(Path(args.corpus).glob("*.jsonl.gz"))
    tokenizer_file = Path(args.tokenizer) / "tokenizer.json"
    raw_files = files[:args.limit_files] if args.limit_files else files
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU")
    size = sum(f.stat().st_size for f in files)
    print(f"corpus {args.corpus}: {len(files)} files, {size / 1e9:.2f} GB gzip'd; CPU {cpu}, "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for processes in args.processes:
        load_before = os.getloadavg()[0]
        raw_tokens, raw_rate = raw_throughput(raw_files, tokenizer_file, processes)
        print(f"P={processes} raw tokenizer: {raw_tokens} tokens at {raw_rate / 1e6:.3f}M tok/s "
              f"(load {load_before:.1f})", flush=True)
        target = raw_tokens if raw_files == files else args.target or raw_tokens
        load_step = os.getloadavg()[0]
        record, peak = measured_step(args, processes, int(target))
        rate = record["tokens"] / record["seconds"]
        print(f"P={processes} data step: {json.dumps(record)}, peak RSS {peak / 2**20:.0f} MiB", flush=True)
        rows.append({"processes": processes, "tokens": record["tokens"], "raw_tok_s": raw_rate, "step_tok_s": rate,
                     "ratio": rate / raw_rate, "peak_rss_mib": peak / 2**20, "pool_s": record["pool_s"],
                     "tokenize_s": record["tokenize_s"], "write_s": record["write_s"],
                     "load_raw": load_before, "load_step": load_step, "load_after": os.getloadavg()[0]})
    print("\n| processes | tokens | tokenizer alone (M tok/s) | data step (M tok/s) | ratio | peak RSS (MiB) "
          "| pool / tokenize / write (s) | load avg (raw, step, after) |")
    print("|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['processes']} | {r['tokens'] / 1e6:.0f}M | {r['raw_tok_s'] / 1e6:.3f} | {r['step_tok_s'] / 1e6:.3f} "
              f"| {r['ratio']:.2f} | {r['peak_rss_mib']:.0f} | {r['pool_s']:.0f} / {r['tokenize_s']:.0f} / "
              f"{r['write_s']:.0f} | {r['load_raw']:.1f}, {r['load_step']:.1f}, {r['load_after']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    corpus = sub.add_parser("corpus")
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--tokens", type=float, required=True)
    for name in ("run", "step"):
        p = sub.add_parser(name)
        p.add_argument("--corpus", type=Path, required=True)
        p.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer folder (build_tokenizer's)")
        p.add_argument("--work", type=Path, required=True, help="scratch folder for pool, store and shards")
        p.add_argument("--target", type=int, default=0, help="tokens of the mixture (default: all the corpus)")
    sub.choices["run"].add_argument("--processes", type=int, nargs="+", default=[1, 2])
    sub.choices["run"].add_argument("--limit-files", type=int, default=0)
    sub.choices["step"].add_argument("--tasks", type=int, required=True)
    args = parser.parse_args()
    if args.command == "corpus":
        make_corpus(args.out, args.tokens)
    elif args.command == "run":
        run(args)
    else:
        print(json.dumps(data_step(args.corpus, args.tokenizer, args.work, args.tasks, args.target)))


if __name__ == "__main__":
    main()
