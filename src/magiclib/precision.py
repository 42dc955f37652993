"""Which arithmetic a step computes in: fp32, or bf16 autocast where this machine makes it measurably faster.

CPUs differ by orders of magnitude in bf16: with AVX-512-BF16 or AMX a bf16 matmul runs 4-5x faster than
fp32, on a plain AVX2 core about 500x slower. So `precision: auto` (train.precision of each stage and
eval.precision) is decided by measurement: a few training passes (forward + backward) or scoring passes
(forward) of the study's own model shape, in fp32 and under bf16 autocast, on one thread (a CPU study's
setting per worker; what decides is the ratio of one core's bf16 and fp32 speed, and one fixed thread count
makes every process on a machine reach the same decision). bf16 is chosen only when it beats fp32 by
BF16_MIN_SPEEDUP. On a GPU `auto` is bf16 without measuring.

bf16 here always means autocast: the weights, the optimizer state, the loss and the log-softmax stay fp32;
only the matrix products run in bf16.

A decision is measured once per machine and cached in a small JSON file (MAGIC_PRECISION_CACHE, else
$XDG_CACHE_HOME/magiclib/precision.json), keyed by the CPU, the torch version and the shape.
MAGIC_PRECISION=fp32|bf16 decides `auto` without measuring (the test suite pins it so; a cluster whose
compute nodes differ from the submitting machine can use it too). An explicit fp32 or bf16 in the config
always wins.

The resolved precision is part of every step's hash (see `hashed`), so a results folder never mixes
precisions silently; the CPU model is recorded in the run record but not hashed (see `hashed` for why).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from .config import ConfigError, EvalConfig, ModelConfig, StudyConfig, TrainConfig, to_dict

REQUESTS = ("auto", "fp32", "bf16")
CACHE_ENV = "MAGIC_PRECISION_CACHE"
DECISION_ENV = "MAGIC_PRECISION"
MEASURE_THREADS = 1
# bf16 costs signal (about 3 significant digits per product), so a speed-up within noise is not worth it.
BF16_MIN_SPEEDUP = 1.2
# A bf16 matmul this many times slower than fp32 means emulated bf16 (AVX2: about 500x); noise stays well below.
NO_NATIVE_BF16 = 4.0
# The measured passes are capped at this many tokens: the speed ratio depends on the matrix shapes
# (d_model, the FFN width, the vocabulary), and 1024 rows are enough to reach a core's steady state.
MAX_MEASURED_TOKENS = 1024
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

# (fp32 seconds, bf16 seconds) of one pass of `kind` ("train" | "eval") at (rows, seq).
Measure = Callable[[ModelConfig, str, tuple[int, int]], tuple[float, float]]


@functools.cache
def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.cache
def _torch_version() -> str:
    return metadata.version("torch")


@functools.cache
def cpu_model() -> str:
    """This machine's CPU as the run record names it: model name, family/model, and its bf16-relevant flags."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if not line.strip():  # the first processor is enough
                break
    except OSError:
        return platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    have = " ".join(f for f in CPU_FLAGS if f in flags) or "no avx2"
    return (f"{info.get('model name', platform.machine())} ({info.get('vendor_id', '?')} family "
            f"{info.get('cpu family', '?')} model {info.get('model', '?')}; {have})")


def cache_path() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "magiclib" / "precision.json"


def measured_shape(kind: str, mc: ModelConfig, rows: int, seq: int) -> tuple[int, int]:
    """The (rows, seq) actually timed for a step of `rows` x `seq` tokens: capped at MAX_MEASURED_TOKENS."""
    seq = max(1, min(seq, mc.context, MAX_MEASURED_TOKENS))
    return max(1, min(rows, MAX_MEASURED_TOKENS // seq)), seq


def decide(mc: ModelConfig, kind: str, rows: int, seq: int, *, measure: Measure | None = None) -> dict:
    """This machine's decision for `auto` at a shape: the cached one, else measured now and cached.

    Returns the cache entry: {"precision", "fp32_s", "bf16_s", "speedup", "cpu", "measured"}.
    """
    if os.environ.get(DECISION_ENV):
        forced = os.environ[DECISION_ENV]
        if forced not in ("fp32", "bf16"):
            raise ConfigError(f"${DECISION_ENV} = {forced!r}; set it to fp32 or bf16, or unset it to measure")
        return {"precision": forced, "source": f"${DECISION_ENV}"}
    shape = measured_shape(kind, mc, rows, seq)
    key = json.dumps({"cpu": cpu_model(), "torch": _torch_version(), "threads": MEASURE_THREADS, "kind": kind,
                      "model": to_dict(mc), "rows": shape[0], "seq": shape[1]}, sort_keys=True)
    path = cache_path()
    cache = _read_cache(path)
    if key in cache:
        return cache[key]
    fp32_s, bf16_s = (measure or measure_passes)(mc, kind, shape)
    speedup = fp32_s / bf16_s if bf16_s > 0 else 0.0
    entry = {"precision": "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32", "fp32_s": fp32_s, "bf16_s": bf16_s,
             "speedup": round(speedup, 3), "cpu": cpu_model(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    from . import io  # pandas comes with io; keep it out of the light imports of this module

    io.write_json(path, {**_read_cache(path), key: entry})  # re-read: another worker may have added one
    return entry


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again (and rewrite it)
        return {}


def resolve(requested: str, mc: ModelConfig, kind: str, rows: int, seq: int, *, cuda: bool | None = None,
            measure: Measure | None = None) -> str:
    """fp32 or bf16 for a step: an explicit request wins; `auto` is bf16 on a GPU, else this CPU's decision.

    `cuda`: whether the step runs on a GPU (None: whether this machine has one)."""
    if requested not in REQUESTS:
        raise ConfigError(f"unknown precision {requested!r}; allowed: {list(REQUESTS)}")
    if requested != "auto":
        return requested
    if has_cuda() if cuda is None else cuda:
        return "bf16"
    return decide(mc, kind, rows, seq, measure=measure)["precision"]


# --- a study's precisions ------------------------------------------------------------------------------


def train_precision(tc: TrainConfig, mc: ModelConfig, *, cuda: bool | None = None,
                    measure: Measure | None = None) -> str:
    return resolve(tc.precision, mc, "train", tc.micro_batch_size, tc.seq_len, cuda=cuda, measure=measure)


def eval_precision(cfg: StudyConfig, *, cuda: bool | None = None, measure: Measure | None = None) -> str:
    """One scoring precision for the whole study: bf16 under `auto` only if it wins at every scale, so the
    PT and SFT scores of all scales stay comparable."""
    ev = cfg.eval
    chosen = {resolve(ev.precision, scale.model, "eval", ev.batch_size, ev.max_length or scale.model.context,
                      cuda=cuda, measure=measure) for scale in cfg.scales.values()}
    return "bf16" if chosen == {"bf16"} else "fp32"


def resolve_study(cfg: StudyConfig, *, cuda: bool | None = None, measure: Measure | None = None) -> StudyConfig:
    """`cfg` with every `auto` replaced by this machine's decision: the config a study writes for its steps,
    so every step (and every later reader of the results folder) sees the precision it was computed in."""
    scales = {
        name: dataclasses.replace(
            scale,
            pretrain=dataclasses.replace(scale.pretrain, precision=train_precision(
                scale.pretrain, scale.model, cuda=cuda, measure=measure)),
            sft=dataclasses.replace(scale.sft, precision=train_precision(
                scale.sft, scale.model, cuda=cuda, measure=measure)))
        for name, scale in cfg.scales.items()}
    ev = dataclasses.replace(cfg.eval, precision=eval_precision(cfg, cuda=cuda, measure=measure))
    return dataclasses.replace(cfg, scales=scales, eval=ev)


EXECUTION_DEFAULTS = {"compile": False, "activation_checkpointing": False, "loss_chunk": None}


def hashed(conf: TrainConfig | EvalConfig, resolved: str) -> dict:
    """A stage's or the scoring config as its step hash sees it: with the precision it resolved to.

    fp32 hashes exactly as the config did before precisions were resolved (train.precision "auto", which
    meant fp32 on CPU; eval without the key), so every fp32 result computed before stays valid. The CPU
    model is not hashed: within a precision it moves numbers only by rounding (see the reproducibility
    chapter for how much), and hashing it would orphan a results folder moved to, or shared by, another
    kind of machine; the run record names the CPU instead.
    """
    values = to_dict(conf)
    for key, default in EXECUTION_DEFAULTS.items():  # GPU execution switches hash only when set (train.py)
        if values.get(key, default) == default:
            values.pop(key, None)
    if resolved == "bf16":
        values["precision"] = "bf16"
    elif isinstance(conf, TrainConfig):
        values["precision"] = "auto"
    else:
        values.pop("precision", None)
    return values


# --- measuring -----------------------------------------------------------------------------------------


def measure_passes(mc: ModelConfig, kind: str, shape: tuple[int, int], threads: int = MEASURE_THREADS,
                   repeats: int = 3) -> tuple[float, float]:
    """Seconds of the fastest of `repeats` passes in fp32 and under bf16 autocast (alternated, so a neighbour's
    burst on a shared machine hits both). A CPU without native bf16 (a bf16 matmul several times slower than
    fp32, as on AVX2) is not timed further: its model passes would take minutes to say the same."""
    import torch

    from .model import build_model

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fp32_mm, bf16_mm = matmul_seconds(torch.float32, 256, 5), matmul_seconds(torch.bfloat16, 256, 5)
        if bf16_mm > NO_NATIVE_BF16 * fp32_mm:
            return fp32_mm, bf16_mm
        model = build_model(mc, seed=0)
        tokens = torch.randint(0, mc.vocab_size, shape)
        one_pass = functools.partial(_train_pass if kind == "train" else _eval_pass, model, tokens)
        best = {False: float("inf"), True: float("inf")}
        for _ in range(repeats + 1):  # the first round warms up kernels and allocator
            for bf16 in (False, True):
                started = time.perf_counter()
                one_pass(bf16)
                best[bf16] = min(best[bf16], time.perf_counter() - started)
        return best[False], best[True]
    finally:
        torch.set_num_threads(saved)


def _train_pass(model, tokens, bf16: bool) -> None:
    import torch

    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=tokens).logits
    torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens.flatten()).backward()
    model.zero_grad(set_to_none=True)


def _eval_pass(model, tokens, bf16: bool) -> None:
    import torch

    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(input_ids=tokens)


def matmul_seconds(dtype, size: int, repeats: int = 3) -> float:
    """Seconds of the fastest of `repeats` size x size matrix products in `dtype` (after one warm-up)."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        fastest = min(fastest, time.perf_counter() - started)
    return fastest
