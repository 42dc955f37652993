"""One training loop for both stages: pretraining on a mixture's tokens, SFT on the tokenized instruction mix.

AdamW, linear warmup then cosine decay to lr * min_lr_ratio, gradient clipping, accumulation of micro-batches
to the global batch, bf16 autocast or fp32 as precision.py decides. The loop is torchrun-native: with WORLD_SIZE > 1
it joins the process group (gloo on CPU, nccl on GPU), wraps the model in DDP (FSDP2 `fully_shard` from
about 1B parameters), gives each rank its slice of every global batch, and lets rank 0 write.

The data order is a pure function of (seed, step): every global batch is a slice of a seeded permutation of
the examples (a new permutation per epoch), so a resumed run sees exactly the batches it would have seen.
A run folder holds:
    model/          the final model (safetensors) with its tokenizer: a self-contained HF checkpoint
    loss.parquet    step, tokens, loss, lr, tokens_per_s, mfu, elapsed_s (loss = mean over the log interval)
    checkpoint/     model/ + trainer.pt (optimizer, step, tokens, log, RNG), every checkpoint_every steps,
                    replaced atomically; a rerun resumes from it; removed once the run has finished

A stop signal (SIGUSR2: Slurm's warning before the time limit; SIGTERM: scancel, requeue, preemption) lets the
step in progress finish, writes a checkpoint there and stops with `TrainingInterrupted`; a rerun resumes from it
and ends with exactly the numbers of an unbroken run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from . import io, precision
from .config import ModelConfig, ScaleConfig, TrainConfig, to_dict
from .data.shards import TokenShards
from .errors import BadValue, UserError
from .model import build_model, count_parameters, flops_per_token

IGNORE_INDEX = -100
FSDP_MIN_PARAMS = 500_000_000  # shard (FSDP2) rather than replicate (DDP) from about the 1B shape up
# Dense bf16 peaks (FLOP/s) by device name, for MFU; anything else is measured (or set $MAGIC_PEAK_FLOPS).
KNOWN_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}
PEAK_FLOPS_ENV = "MAGIC_PEAK_FLOPS"
# A loss above twice that of a uniform guess over the vocabulary means the run has blown up.
EXPLODED_LOSS_FACTOR = 2.0
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Fields of a stage's config that do not change what is computed; a checkpoint resumes across changes to them
# (and across world sizes: the data order and the saved optimizer state do not depend on the number of ranks).
RESUME_NEUTRAL_FIELDS = ("log_every", "checkpoint_every", "threads", "compile", "activation_checkpointing",
                         "loss_chunk")
LOG_COLUMNS = ["step", "tokens", "loss", "lr", "tokens_per_s", "mfu", "elapsed_s"]


class TrainingDiverged(UserError, RuntimeError):
    """The loss or the gradient became NaN/inf or exploded; the last good checkpoint is kept."""


class TrainingInterrupted(UserError, RuntimeError):
    """A stop signal arrived; the loop wrote a checkpoint at the end of its step, and a rerun resumes there."""


# Signals that ask a run to checkpoint and stop: Slurm's warning before the time limit (sbatch --signal=USR2@s)
# and the SIGTERM that scancel, requeue and preemption send before they kill.
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


# --- where we run ----------------------------------------------------------------------------------


@dataclass
class Runtime:
    """This process's place in a (possibly single-process) run."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool  # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def start_runtime(threads: int | None) -> Runtime:
    """Join torchrun's process group when WORLD_SIZE > 1 and pick this rank's device."""
    if threads:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owns_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns_group = True
    return Runtime(rank=rank, world=world, device=device, owns_group=owns_group)


def stop_runtime(rt: Runtime) -> None:
    if rt.owns_group:
        dist.destroy_process_group()


def prepare_model(model: LlamaForCausalLM, tc: TrainConfig) -> LlamaForCausalLM:
    """The stage's execution switches: activation checkpointing, then torch.compile of each decoder block.

    Each block is compiled on its own (module.compile, in place, so parameter names and checkpoints are
    unchanged): one graph reused by every layer compiles far faster than the whole model and is what
    FSDP2 wraps. At the defaults (both off) the model is returned untouched.
    """
    if tc.activation_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if tc.compile:
        for layer in model.model.layers:
            layer.compile()
    return model


def wrap_for_parallel(model: torch.nn.Module, rt: Runtime, bf16: bool = False) -> torch.nn.Module:
    """DDP across ranks, or FSDP2 (each decoder layer sharded, then the root) for large models.

    Under bf16, FSDP2 gathers parameters in bf16 and reduces gradients in fp32 (its mixed-precision policy):
    half the all-gather traffic, and no precision lost in the gradient sum.
    """
    if rt.world == 1:
        return model
    if sum(p.numel() for p in model.parameters()) >= FSDP_MIN_PARAMS:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
            else MixedPrecisionPolicy()
        for layer in model.model.layers:
            fully_shard(layer, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model
    return DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> LlamaForCausalLM:
    return model.module if isinstance(model, DistributedDataParallel) else model


def resolved_precision(tc: TrainConfig, mc: ModelConfig, device: torch.device) -> str:
    """fp32 or bf16 (autocast) for this stage on this device: explicit, or decided by precision.py."""
    return precision.train_precision(tc, mc, cuda=device.type == "cuda")


@functools.cache
def peak_flops(device_type: str, device_name: str, bf16: bool) -> float:
    """Peak FLOP/s of one device for MFU: $MAGIC_PEAK_FLOPS, a known GPU's dense bf16 peak, or a measured matmul."""
    if os.environ.get(PEAK_FLOPS_ENV):
        return float(os.environ[PEAK_FLOPS_ENV])
    if device_type == "cuda" and bf16:
        for name, flops in KNOWN_PEAK_FLOPS.items():
            if name in device_name:
                return flops
    return _measured_matmul_flops(torch.device(device_type), torch.bfloat16 if bf16 else torch.float32)


def _measured_matmul_flops(device: torch.device, dtype: torch.dtype) -> float:
    size = 8192 if device.type == "cuda" else 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm up kernels and caches
    fastest = math.inf
    for _ in range(5):  # the fastest of a few: on a shared machine the others are slowed by neighbours
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- data -----------------------------------------------------------------------------------------


class TokenWindows:
    """Pretraining examples: non-overlapping windows of seq_len + 1 tokens of a flat token array."""

    def __init__(self, tokens_path: Path, seq_len: int, vocab_size: int):
        self.tokens = TokenShards(tokens_path)  # a mixture's folder of .npy shards, or one .npy file
        self.seq_len = seq_len
        if self.tokens.ndim != 1 or len(self) == 0:
            raise BadValue(
                f"{tokens_path} holds {self.tokens.size} tokens in shape {self.tokens.shape}; pretraining needs a "
                f"flat array of more than seq_len + 1 = {seq_len + 1} tokens (raise data.tokens_per_mixture)"
            )
        largest = int(self.tokens.max())
        if largest >= vocab_size:
            raise BadValue(
                f"{tokens_path} has token id {largest} but the model's vocabulary is {vocab_size}; set "
                f"model.vocab_size >= the tokenizer's size (data.vocab_size)"
            )

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.seq_len

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        window = np.array(self.tokens[i * self.seq_len: (i + 1) * self.seq_len + 1], dtype=np.int64)
        return window[:-1], window[1:]

    def n_targets(self, indices: list[int]) -> int:
        return len(indices) * self.seq_len

    def n_tokens(self, indices: list[int]) -> int:
        return len(indices) * self.seq_len


class SFTExamples:
    """SFT examples from sft.parquet, cut to seq_len + 1 tokens; targets only where labels != -100."""

    def __init__(self, parquet_path: Path, seq_len: int):
        frame = pd.read_parquet(parquet_path, columns=["input_ids", "labels"])
        if frame.empty:
            raise BadValue(f"{parquet_path} has no examples; rebuild the SFT data (sft_data.max_examples > 0)")
        self.input_ids = [np.array(ids[: seq_len + 1], dtype=np.int64) for ids in frame["input_ids"]]
        self.labels = [np.array(lab[: seq_len + 1], dtype=np.int64) for lab in frame["labels"]]
        self.targets = np.array([int((lab[1:] != IGNORE_INDEX).sum()) for lab in self.labels])
        self.lengths = np.array([len(ids) - 1 for ids in self.input_ids])

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.input_ids[i][:-1], self.labels[i][1:]

    def n_targets(self, indices: list[int]) -> int:
        return int(self.targets[indices].sum())

    def n_tokens(self, indices: list[int]) -> int:
        return int(self.lengths[indices].sum())


@functools.lru_cache(maxsize=2)
def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` visits the n examples."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Example indices of global batch `step`: consecutive slices of per-epoch permutations."""
    first = step * batch_size
    return [int(epoch_order(n, seed, i // n)[i % n]) for i in range(first, first + batch_size)]


def collate(pairs: list[tuple[np.ndarray, np.ndarray]], pad_id: int, device: torch.device) -> dict:
    """Right-pad a micro-batch; padding is masked out of attention and carries no targets."""
    longest = max(len(ids) for ids, _ in pairs)
    input_ids = torch.full((len(pairs), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(pairs), longest), dtype=torch.long)
    for row, (ids, lab) in enumerate(pairs):
        input_ids[row, : len(ids)] = torch.from_numpy(ids)
        labels[row, : len(lab)] = torch.from_numpy(lab)
        mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "labels": labels}
    if not bool(mask.all()):  # full windows need no mask: the faster attention path
        batch["attention_mask"] = mask
    if device.type == "cuda":  # from pinned memory the copy runs beside the GPU's work, with no host wait
        return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}


# --- optimization ---------------------------------------------------------------------------------


def lr_at(step: int, tc: TrainConfig, total_steps: int) -> float:
    """Linear warmup over warmup_steps, then cosine from lr down to lr * min_lr_ratio at the last step."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = (step - tc.warmup_steps) / max(1, total_steps - 1 - tc.warmup_steps)
    floor = tc.lr * tc.min_lr_ratio
    return floor + (tc.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices only (not on norms or the embedding)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "embed_tokens" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")


def micro_batch_loss(model: torch.nn.Module, batch: dict, bf16: bool, loss_chunk: int | None = None) -> torch.Tensor:
    """Summed next-token cross-entropy over the micro-batch's target tokens (in chunks of loss_chunk tokens)."""
    autocast = torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16) if bf16 \
        else contextlib.nullcontext()
    if loss_chunk:
        with autocast:
            hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
            return chunked_cross_entropy(hidden.last_hidden_state.flatten(0, 1), model.lm_head.weight,
                                         batch["labels"].flatten(), loss_chunk)
    with autocast:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def chunked_cross_entropy(hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Summed cross-entropy of (tokens, d) hidden states through the output head, `chunk` tokens at a time.

    Each chunk's logits are recomputed in backward (checkpointed) rather than kept, so at a 100k vocabulary
    the logits of a micro-batch (tokens x vocab in fp32: the largest tensor of the step) never exist whole.
    """
    total = hidden.new_zeros((), dtype=torch.float32)
    for h, y in zip(hidden.split(chunk), labels.split(chunk), strict=True):
        total = total + torch.utils.checkpoint.checkpoint(_chunk_cross_entropy, h, head, y, use_reentrant=False)
    return total


def _chunk_cross_entropy(hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(hidden, head).float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")


def accumulate_gradients(model: torch.nn.Module, data, indices: list[int], tc: TrainConfig, rt: Runtime,
                         pad_id: int, bf16: bool) -> tuple[float, float]:
    """Forward and backward over this rank's slice of a global batch, then clip: (mean loss, gradient norm)."""
    summed, n_targets, norm = step_gradients(model, data, indices, tc, rt, pad_id, bf16)
    return summed.item() / n_targets, _total_norm(norm)


def step_gradients(model: torch.nn.Module, data, indices: list[int], tc: TrainConfig, rt: Runtime,
                   pad_id: int, bf16: bool) -> tuple[torch.Tensor, int, torch.Tensor]:
    """`accumulate_gradients` without reading anything back to the host (a read waits for the GPU):
    (summed loss, target count, gradient norm before clipping), the tensors still on the device."""
    n_targets = max(1, data.n_targets(indices))
    per_rank = len(indices) // rt.world
    mine = indices[rt.rank * per_rank: (rt.rank + 1) * per_rank]
    micro_batches = [mine[i: i + tc.micro_batch_size] for i in range(0, per_rank, tc.micro_batch_size)]
    summed = torch.zeros((), device=rt.device)
    for k, micro in enumerate(micro_batches):
        batch = collate([data[i] for i in micro], pad_id, rt.device)
        with _gradient_sync(model, last=k == len(micro_batches) - 1):
            loss_sum = micro_batch_loss(model, batch, bf16, tc.loss_chunk)
            # Normalised by the global batch's target count (times ranks, which DDP averages over), so every
            # target token weighs the same however the batch is split across micro-batches and ranks.
            (loss_sum * rt.world / n_targets).backward()
        summed += loss_sum.detach()
    if rt.world > 1:
        dist.all_reduce(summed)
    return summed, n_targets, torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)


# --- checkpoints ----------------------------------------------------------------------------------


def save_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path, rt: Runtime) -> None:
    """A self-contained HF checkpoint (safetensors + tokenizer); every rank gathers, rank 0 writes."""
    state = get_model_state_dict(model, options=FULL_STATE)
    if rt.is_main:
        with io.atomic_path(path) as tmp:
            _write_model(unwrap(model), state, tokenizer, tmp)
    rt.barrier()


def _write_model(model: LlamaForCausalLM, state: dict, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    if model.config.tie_word_embeddings:  # a gathered (FSDP) state holds the tied matrix twice: store it once
        state = {name: value for name, value in state.items() if name != "lm_head.weight"}
    with _quiet_transformers():
        model.save_pretrained(folder, state_dict=state, safe_serialization=True)
    tokenizer.save_pretrained(folder)


@contextlib.contextmanager
def _quiet_transformers():
    """No per-file progress bars from transformers inside our own."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def save_checkpoint(model, optimizer, trainer_state: dict, tokenizer, folder: Path, rt: Runtime) -> None:
    """Model, optimizer and loop state in a temporary folder, renamed over `folder` when complete."""
    model_state = get_model_state_dict(model, options=FULL_STATE)
    optim_state = get_optimizer_state_dict(model, optimizer, options=FULL_STATE)
    if rt.is_main:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        with io.atomic_path(folder) as tmp:
            _write_model(unwrap(model), model_state, tokenizer, tmp / "model")
            torch.save({**trainer_state, "optimizer": optim_state, "rng": rng}, tmp / "trainer.pt")
    rt.barrier()


def load_trainer_state(folder: Path, fingerprint: dict) -> dict | None:
    """The loop state of a resumable checkpoint in `folder`, or None when there is none."""
    path = folder / "trainer.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["fingerprint"] != fingerprint:
        raise BadValue(
            f"{folder} is a checkpoint of a different run (config or seed differ); delete that folder to "
            "start afresh, or use the config it was written with"
        )
    return state


def _fingerprint(stage: str, mc: ModelConfig, tc: TrainConfig, seed: int) -> dict:
    train = {k: v for k, v in to_dict(tc).items() if k not in RESUME_NEUTRAL_FIELDS}
    return {"stage": stage, "model": to_dict(mc), "train": train, "seed": seed}


class LossLog:
    """The rows of loss.parquet: each the mean loss and the throughput over the steps since the row before."""

    def __init__(self, rows: list[dict], elapsed: float, flops_per_peak: float):
        self.rows, self.elapsed, self.flops_per_peak = rows, elapsed, flops_per_peak  # resumed from a checkpoint
        self._start_interval()

    def _start_interval(self) -> None:
        self.loss, self.steps, self.tokens, self.start = 0.0, 0, 0, time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self.loss, self.steps, self.tokens = self.loss + loss, self.steps + 1, self.tokens + tokens

    def close_interval(self, step: int, tokens_seen: int, lr: float) -> dict:
        seconds = time.perf_counter() - self.start
        self.elapsed += seconds
        tokens_per_s = self.tokens / seconds
        row = {"step": step, "tokens": tokens_seen, "loss": self.loss / self.steps, "lr": lr,
               "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * self.flops_per_peak, "elapsed_s": self.elapsed}
        self.rows.append(row)
        self._start_interval()
        return row

    @contextlib.contextmanager
    def paused(self):
        started = time.perf_counter()
        yield
        self.start += time.perf_counter() - started

    def open_interval(self) -> dict:
        """The interval not logged yet, for a checkpoint taken between log rows (a stop signal)."""
        return {"loss": self.loss, "steps": self.steps, "tokens": self.tokens,
                "seconds": time.perf_counter() - self.start}

    def reopen_interval(self, interval: dict) -> None:
        """Continue an interval saved by `open_interval`, so the next row is the one an unbroken run logs."""
        self.loss, self.steps, self.tokens = interval["loss"], interval["steps"], interval["tokens"]
        self.start = time.perf_counter() - interval["seconds"]


class StopRequest:
    """Notes a stop signal while training; the loop acts on it at the end of a step (never mid-step).

    Handlers are installed only in the main thread (Python allows no other) and the previous ones come back
    on exit. Under torchrun every rank must stop at the same step, so the ranks agree on it each step.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._note) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, signum: int, frame) -> None:
        self.signum = signum

    def requested(self, rt: Runtime) -> bool:
        asked = self.signum is not None
        if rt.world > 1:
            flag = torch.tensor(float(asked), device=rt.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            asked = bool(flag.item())
        return asked


def _diverged(stage: str, step: int, loss: float, grad_norm: float, lr: float, tc: TrainConfig,
              checkpoint_dir: Path) -> TrainingDiverged:
    kept = f"the last good checkpoint is {checkpoint_dir} (step {_checkpoint_step(checkpoint_dir)})" \
        if (checkpoint_dir / "trainer.pt").exists() else "no checkpoint was written yet"
    return TrainingDiverged(
        f"{stage} diverged at step {step}: loss {loss:.4g}, gradient norm {grad_norm:.4g} (lr {lr:.3g}); {kept}. "
        f"Lower the learning rate ({stage}.lr, now {tc.lr:g}) or raise warmup_steps and rerun"
    )


# --- the loop -------------------------------------------------------------------------------------


def run_training(stage: str, model: LlamaForCausalLM, data, tokenizer, mc: ModelConfig, tc: TrainConfig,
                 total_steps: int, out_dir: Path, seed: int, rt: Runtime, resume: dict | None) -> dict:
    """Train `model` for total_steps global batches of `data`; write model/, loss.parquet, checkpoint/."""
    if tc.batch_size % (tc.micro_batch_size * rt.world):
        raise BadValue(
            f"batch_size {tc.batch_size} is not a multiple of micro_batch_size {tc.micro_batch_size} x "
            f"{rt.world} ranks; choose a micro_batch_size that divides batch_size / ranks"
        )
    if tc.loss_chunk and rt.world > 1:
        raise BadValue(
            f"loss_chunk is set ({tc.loss_chunk}) with {rt.world} ranks; the chunked loss runs on one GPU only: "
            "set loss_chunk to null for multi-GPU runs"
        )
    out_dir = Path(out_dir)
    computed_in = resolved_precision(tc, mc, rt.device)
    bf16 = computed_in == "bf16"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = wrap_for_parallel(prepare_model(model.to(rt.device), tc), rt, bf16)
    optimizer = make_optimizer(model, tc, rt.device)
    fingerprint = _fingerprint(stage, mc, tc, seed)
    step, tokens_seen, elapsed, rows = 0, 0, 0.0, []
    if resume is not None:
        set_optimizer_state_dict(model, optimizer, resume["optimizer"], options=StateDictOptions(full_state_dict=True))
        torch.set_rng_state(resume["rng"]["torch"])
        if "cuda" in resume["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resume["rng"]["cuda"])
        step, tokens_seen, elapsed, rows = resume["step"], resume["tokens_seen"], resume["elapsed_s"], resume["log"]

    flops = flops_per_token(mc, tc.seq_len)
    peak = peak_flops(rt.device.type, torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "",
                      bf16) * rt.world
    log = LossLog(rows, elapsed, flops / peak)
    if resume is not None and resume.get("interval"):
        log.reopen_interval(resume["interval"])
    max_loss = EXPLODED_LOSS_FACTOR * math.log(mc.vocab_size)
    checkpoint_dir = out_dir / "checkpoint"
    bar = tqdm(total=total_steps, initial=step, desc=f"{stage} {out_dir.name}", unit="step",
               disable=not rt.is_main, mininterval=1.0)
    # Steps not yet read back to the host. On a GPU, reading a loss waits for the GPU to finish, so the losses
    # and gradient norms are read (and checked for divergence) only when a row is logged; on a CPU, where a read
    # costs nothing, every step is read and checked before its update, as always.
    pending: list[tuple] = []
    defer_reads = reads_deferred(rt.device)

    def settle() -> None:
        for step_no, summed, n_targets, norm, step_lr, step_tokens in pending:
            loss, grad_norm = summed.item() / n_targets, _total_norm(norm)
            if not math.isfinite(loss) or not math.isfinite(grad_norm) or loss > max_loss:
                bar.close()
                raise _diverged(stage, step_no, loss, grad_norm, step_lr, tc, checkpoint_dir)
            log.add(loss, step_tokens)
        pending.clear()

    model.train()
    with StopRequest() as stop:
        while step < total_steps:
            indices = batch_indices(step, tc.batch_size, len(data), seed)
            lr = lr_at(step, tc, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tokens = data.n_tokens(indices)
            pending.append((step + 1, *step_gradients(model, data, indices, tc, rt, pad_id, bf16), lr, tokens))
            if not defer_reads:
                settle()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += tokens
            bar.update(1)
            checkpoint_now = bool(tc.checkpoint_every) and step % tc.checkpoint_every == 0 and step < total_steps
            # A checkpoint closes the log interval too, so a resumed run logs exactly what an unbroken one does.
            if step % tc.log_every == 0 or step == total_steps or checkpoint_now:
                settle()
                row = log.close_interval(step, tokens_seen, lr)
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:,.0f}",
                                mfu=f"{row['mfu']:.1%}")
            stopping = step < total_steps and stop.requested(rt)
            if checkpoint_now or stopping:
                settle()
                with log.paused():  # writing is not training: keep it out of tokens/s
                    _flush_log(log.rows, out_dir, rt)
                    state = {"fingerprint": fingerprint, "step": step, "tokens_seen": tokens_seen,
                             "elapsed_s": log.elapsed, "log": log.rows, "interval": log.open_interval()}
                    save_checkpoint(model, optimizer, state, tokenizer, checkpoint_dir, rt)
            if stopping:
                bar.close()
                raise TrainingInterrupted(
                    f"{stage} stopped by {signal.Signals(stop.signum or signal.SIGTERM).name} after step {step} of "
                    f"{total_steps}; the checkpoint is in {checkpoint_dir}: rerun the step (or `magic study`) to "
                    "resume from it")
    bar.close()

    save_model(model, tokenizer, out_dir / "model", rt)
    _flush_log(log.rows, out_dir, rt)
    if rt.is_main:  # finished: model/ is the result, and the optimizer state would only take disk space
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    tokens_per_s = tokens_seen / log.elapsed if log.elapsed else 0.0
    return {
        "stage": stage,
        "final_loss": log.rows[-1]["loss"] if log.rows else float("nan"),  # mean over the last log interval
        "tokens_seen": tokens_seen,
        "steps": step,
        "seconds": round(log.elapsed, 3),
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * flops / peak,
        "params": count_parameters(mc)["total"],
        "world_size": rt.world,
        "data_epochs": step * tc.batch_size / len(data),
        "precision": computed_in,
        "cpu": precision.cpu_model(),
    }


def reads_deferred(device: torch.device) -> bool:
    """Whether the loop reads losses back only at log rows (on a GPU) rather than every step."""
    return device.type == "cuda"


def _gradient_sync(model: torch.nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if last:
        return contextlib.nullcontext()
    if isinstance(model, DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        return _resume_gradient_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _resume_gradient_sync(model):
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def _total_norm(norm: torch.Tensor) -> float:
    """The clipped-before gradient norm as a float (under FSDP2 it is a sharded DTensor)."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def _checkpoint_step(folder: Path) -> int:
    return torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)["step"]


def _flush_log(log: list[dict], out_dir: Path, rt: Runtime) -> None:
    if rt.is_main:
        io.write_parquet(out_dir / "loss.parquet", pd.DataFrame(log, columns=LOG_COLUMNS))



# --- the two stages -------------------------------------------------------------------------------


def pretrain(scale: ScaleConfig, tokens_path: Path, tokenizer_dir: Path, out_dir: Path, seed: int) -> dict:
    """Pretrain a fresh model of `scale` on a mixture's flat token array (resuming from out_dir/checkpoint)."""
    mc, tc = scale.model, scale.pretrain
    rt = start_runtime(tc.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        _check_vocabulary(tokenizer, mc, tokenizer_dir)
        data = TokenWindows(Path(tokens_path), tc.seq_len, mc.vocab_size)
        total_steps = tc.max_steps or len(data) // tc.batch_size
        if total_steps < 1:
            raise BadValue(
                f"{tokens_path} gives {len(data)} windows of {tc.seq_len} tokens, less than one batch of "
                f"{tc.batch_size}; raise data.tokens_per_mixture or lower pretrain.batch_size / seq_len"
            )
        checkpoint_dir = Path(out_dir) / "checkpoint"
        resume = load_trainer_state(checkpoint_dir, _fingerprint("pretrain", mc, tc, seed))
        if resume is None:
            model = build_model(mc, seed)
            for config in (model.config, model.generation_config):  # so generation stops at the end of a reply
                config.eos_token_id = tokenizer.eos_token_id
                config.pad_token_id = tokenizer.pad_token_id
        else:
            model = _load_model(checkpoint_dir / "model")
        return run_training("pretrain", model, data, tokenizer, mc, tc, total_steps, Path(out_dir), seed, rt, resume)
    finally:
        stop_runtime(rt)


def sft(scale: ScaleConfig, pt_model_dir: Path, sft_dir: Path, out_dir: Path, seed: int) -> dict:
    """Fine-tune a pretrained checkpoint on sft_dir/sft.parquet for the scale's epochs (or max_steps)."""
    mc, tc = scale.model, scale.sft
    rt = start_runtime(tc.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(pt_model_dir)
        data = SFTExamples(Path(sft_dir) / "sft.parquet", tc.seq_len)
        total_steps = tc.max_steps or math.ceil(tc.epochs * len(data) / tc.batch_size)
        checkpoint_dir = Path(out_dir) / "checkpoint"
        resume = load_trainer_state(checkpoint_dir, _fingerprint("sft", mc, tc, seed))
        model = _load_model(pt_model_dir if resume is None else checkpoint_dir / "model")
        _check_shape(model, mc, pt_model_dir)
        return run_training("sft", model, data, tokenizer, mc, tc, total_steps, Path(out_dir), seed, rt, resume)
    finally:
        stop_runtime(rt)


def _load_model(folder: Path) -> LlamaForCausalLM:
    with _quiet_transformers():
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.config.use_cache = False
    return model


def _check_vocabulary(tokenizer: PreTrainedTokenizerBase, mc: ModelConfig, tokenizer_dir: Path) -> None:
    if len(tokenizer) > mc.vocab_size:
        raise BadValue(
            f"the tokenizer in {tokenizer_dir} has {len(tokenizer)} tokens but model.vocab_size is "
            f"{mc.vocab_size}; set model.vocab_size >= {len(tokenizer)} (or lower data.vocab_size)"
        )


def _check_shape(model: LlamaForCausalLM, mc: ModelConfig, folder: Path) -> None:
    have = (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size)
    want = (mc.d_model, mc.n_layers, mc.vocab_size)
    if have != want:
        raise BadValue(
            f"{folder} holds a model with (d_model, n_layers, vocab_size) = {have} but the scale asks for {want}; "
            "fine-tune the pretrained checkpoint of this same scale"
        )
