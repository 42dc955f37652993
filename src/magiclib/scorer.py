"""Batched log-likelihood scoring of benchmark items, token for token as lm-evaluation-harness scores them.

Every choice is tokenized as lm-eval's `_encode_pair` does: trailing whitespace of the context moves to the
continuation, the context and the whole string are encoded, and the continuation is the tail of the whole
beyond the context's length. The model input is (context + continuation) left-truncated to max_length + 1
tokens, minus the last token, exactly as lm-eval's HF backend builds it.

Unlike lm-eval we never run a token twice. The choices of an item share an input prefix (at least the
context), so the prefix runs once, as a plain causal sequence, and each choice's own tail (if it has one:
a one-token answer has none) then runs against the prefix's cached keys and values. The output head runs
only at the positions that predict continuation tokens. Items (and a batch's tails) sorted by length are cut
into the passes that cost least, padding plus a fixed cost per pass, within a token budget; right padding
needs no attention mask in the prefix pass, which keeps SDPA on its fused causal kernel. The budget is sized to the machine: a cache-sized work unit on a
CPU, a share of the free memory on a GPU.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .benchmarks import Item
from .config import EvalConfig
from .errors import BadValue

ITEM_COLUMNS = ["benchmark", "item", "choice", "loglik", "n_tokens", "n_chars", "gold"]
PRECISIONS = ("fp32", "bf16")
CPU_ACTIVATION_BYTES = 16 * 2**20  # one layer's fp32 activations per forward on a CPU: ~2k tokens at d 576
CPU_CACHE_BYTES = 512 * 2**20  # the keys and values copied for one tail pass, on a CPU
GPU_MEMORY_SHARE = 0.5  # of the free GPU memory, for one forward's activations and cache copies
HEAD_BYTES = 256 * 2**20  # fp32 logits of the output head, per chunk of predicted positions
# A forward pass's fixed cost in tokens' worth of compute: ~13 measured at d 256 and 576 for a plain pass; tail
# passes also copy caches, and 16, 32 and 64 scored equally fast (bench/README.md).
PASS_COST_TOKENS = 32


@dataclass
class SharedItem:
    """One item split for scoring: the input prefix all its choices share, each choice's own tail beyond it,
    and for every continuation token where it is predicted: (in the prefix or choice c's tail, position)."""

    prefix: list[int]
    tails: list[list[int]]
    prefix_at: list[int] = field(default_factory=list)  # prefix positions that predict a continuation token
    prefix_targets: list[int] = field(default_factory=list)
    prefix_choice: list[int] = field(default_factory=list)
    tail_at: list[list[int]] = field(default_factory=list)  # per choice: tail positions that predict a token
    tail_targets: list[list[int]] = field(default_factory=list)


def default_max_length(model) -> int:
    """The model's context window, read from its config as lm-eval's HF backend reads it."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if getattr(model.config, attr, None):
            return int(getattr(model.config, attr))
    raise BadValue(f"{type(model).__name__}'s config names no context length; pass max_length explicitly")


def encode_items(tokenizer, items: Sequence[Item]) -> list[list[tuple[list[int], list[int]]]]:
    """(context tokens, continuation tokens) of every choice of every item, as lm-eval's `_encode_pair`."""
    pairs = []
    for item in items:
        for context, continuation in item.requests():
            kept = context.rstrip()
            if not kept:
                raise BadValue(f"{item.benchmark} item {item.item_id} has an empty context; every benchmark "
                               "prompt must have one (check its adapter)")
            pairs.append((kept, context[len(kept):] + continuation))
    unique_contexts = list(dict.fromkeys(context for context, _ in pairs))
    context_ids = dict(zip(unique_contexts, _encode(tokenizer, unique_contexts), strict=True))
    whole_ids = _encode(tokenizer, [context + continuation for context, continuation in pairs])
    encoded, flat = [], iter(zip(pairs, whole_ids, strict=True))
    for item in items:
        choices = []
        for _ in item.continuations:
            (context, _), whole = next(flat)
            context_enc = context_ids[context]
            continuation_enc = whole[len(context_enc):]
            if not continuation_enc:
                raise BadValue(f"{item.benchmark} item {item.item_id}: a continuation encodes to no tokens; "
                               "every choice needs at least one token to be scored")
            choices.append((context_enc, continuation_enc))
        encoded.append(choices)
    return encoded


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    # Special tokens as the tokenizer adds them by default, like lm-eval's tok_encode.
    return tokenizer(texts, verbose=False)["input_ids"] if texts else []


def split_item(choices: list[tuple[list[int], list[int]]], max_length: int) -> SharedItem:
    """The inputs of an item's choices as one shared prefix and a tail per choice (lm-eval's windows)."""
    inputs, targets = [], []
    for context_enc, continuation_enc in choices:
        inputs.append((context_enc + continuation_enc)[-(max_length + 1):][:-1])
        # lm-eval refuses a continuation longer than the window; we score the tail that fits (see score_items)
        targets.append(continuation_enc[-max_length:])
    shared = _common_prefix_length(inputs)
    item = SharedItem(inputs[0][:shared], [seq[shared:] for seq in inputs])
    for choice, (seq, target) in enumerate(zip(inputs, targets, strict=True)):
        at, tail_targets = [], []
        # input position k predicts token k + 1; the last len(target) positions predict the continuation
        for k, token in zip(range(len(seq) - len(target), len(seq)), target, strict=True):
            if k < shared:
                item.prefix_at.append(k)
                item.prefix_targets.append(token)
                item.prefix_choice.append(choice)
            else:
                at.append(k - shared)
                tail_targets.append(token)
        item.tail_at.append(at)
        item.tail_targets.append(tail_targets)
    return item


def _common_prefix_length(seqs: list[list[int]]) -> int:
    shortest = min(len(s) for s in seqs)
    for k in range(shortest):
        if any(s[k] != seqs[0][k] for s in seqs[1:]):
            return k
    return shortest


def _kv_bytes_per_token(model) -> int:
    """Bytes of cached keys and values one token takes across all layers (fp32)."""
    config = model.config.get_text_config()
    heads = getattr(config, "num_attention_heads", 1)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * 4


def token_budget(model) -> int:
    """Tokens per forward pass. On a CPU, as many as keep one layer's activations (hidden state and MLP
    intermediate, fp32) within CPU_ACTIVATION_BYTES, near the caches (a larger batch measured slower on a
    busy machine; a small model gets more tokens, so fewer forward calls). On a GPU, what half its free
    memory holds: the activations of one layer plus every layer's keys and values, per token."""
    config = model.config.get_text_config()
    # the MLP's width: intermediate_size (Llama...), n_inner (GPT-2, None meaning 4 x hidden)
    mlp = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * config.hidden_size
    if model.device.type != "cuda":
        return max(256, CPU_ACTIVATION_BYTES // (4 * (config.hidden_size + mlp)))
    free, _ = torch.cuda.mem_get_info(model.device)
    per_token = _kv_bytes_per_token(model) + 4 * (6 * config.hidden_size + 3 * mlp)
    return int(min(2**17, max(256, GPU_MEMORY_SHARE * free // per_token)))


def _cache_budget(model, max_tokens: int) -> int:
    """Cached positions (keys) one tail pass may copy: bounded in bytes on a CPU; on a GPU the token budget,
    whose bytes per token already count every layer's keys and values."""
    if model.device.type == "cuda":
        return max_tokens
    return max(max_tokens, CPU_CACHE_BYTES // _kv_bytes_per_token(model))


def _batches(lengths: list[int], order: list[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Consecutive runs of `order` (sorted by decreasing length), each within `max_rows` rows and `max_tokens`
    padded tokens, that minimise the padded tokens plus PASS_COST_TOKENS per pass: an exact partition (dynamic
    programming over the runs' ends). Mixed benchmarks put 1-token and 60-token tails side by side, and a pass over
    padding costs as much as one over real tokens; a pass has a fixed cost too, so runs are not cut too small."""
    sizes = [lengths[i] for i in order]
    best, start = [0.0] + [float("inf")] * len(sizes), [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        for rows in range(1, min(max_rows, end) + 1):
            padded = rows * sizes[end - rows]  # the run's first row is its longest
            if padded > max_tokens and rows > 1:
                break
            cost = best[end - rows] + padded + PASS_COST_TOKENS
            if cost < best[end]:
                best[end], start[end] = cost, end - rows
    runs, end = [], len(sizes)
    while end:
        runs.append(order[start[end]:end])
        end = start[end]
    return runs[::-1]


def _right_padded(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    valid = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        valid[i, :len(seq)] = 1
    return ids.to(device), valid.to(device)


def _select_cache(model, cache, rows: torch.Tensor):
    """A new cache holding the prefix keys and values of `rows` (one per tail), for one tail pass."""
    from transformers import DynamicCache

    pairs = ([(layer.keys, layer.values) for layer in cache.layers] if hasattr(cache, "layers")
             else zip(cache.key_cache, cache.value_cache, strict=True))  # transformers < 4.56
    data = [(keys.index_select(0, rows), values.index_select(0, rows)) for keys, values in pairs]
    return DynamicCache(ddp_cache_data=data, config=model.config)


def _cache_argument(decoder) -> str:
    """The name under which the decoder takes a cache: `cache` from transformers 5.2x, else past_key_values."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


@torch.inference_mode()
def _score_batch(model, batch: list[SharedItem], bf16: bool, max_tokens: int) -> list[np.ndarray]:
    """Summed continuation log-likelihood per choice, for a batch of items.

    Pass 1 runs the prefixes, right padded and causal (pads come after every real token, so no mask). Pass 2
    runs the tails, cut into sub-batches by the token budget, each tail attending to its own item's cached
    prefix (the 2D mask hides the padding of shorter prefixes) with positions continuing the prefix's.
    With bf16 the decoder's matrix products run under bf16 autocast; the output head and the log-softmax
    stay fp32 (the head of a continuation token is a small share of the work, and its rounding the largest)."""
    decoder, device = model.get_decoder(), model.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    hidden, targets, owners = [], [], []  # per predicted token: hidden state, target id, (item, choice)
    width = max(len(item.prefix) for item in batch)
    tails = [(i, c) for i, item in enumerate(batch) for c, tail in enumerate(item.tails) if tail]
    cache = None
    if width:
        ids, _ = _right_padded([item.prefix or [0] for item in batch], device)
        with autocast:
            out = decoder(input_ids=ids, use_cache=bool(tails))
        rows = _index([i for i, item in enumerate(batch) for _ in item.prefix_at], device)
        cols = _index([k for item in batch for k in item.prefix_at], device)
        hidden.append(out.last_hidden_state[rows, cols])
        targets += [t for item in batch for t in item.prefix_targets]
        owners += [(i, c) for i, item in enumerate(batch) for c in item.prefix_choice]
        if tails:
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
    if tails:
        tails.sort(key=lambda ic: -len(batch[ic[0]].tails[ic[1]]))
        lengths = [len(batch[i].tails[c]) for i, c in tails]
        max_rows = max(1, _cache_budget(model, max_tokens) // (width + lengths[0]))
        for part in _batches(lengths, list(range(len(tails))), max_tokens, max_rows):
            chosen = [tails[j] for j in part]
            ids, valid = _right_padded([batch[i].tails[c] for i, c in chosen], device)
            starts = _index([len(batch[i].prefix) for i, _ in chosen], device)
            kwargs = {"position_ids": starts[:, None] + torch.arange(ids.shape[1], device=device)}
            if cache is not None:
                prefix_valid = (torch.arange(width, device=device)[None] < starts[:, None]).long()
                item_rows = _index([i for i, _ in chosen], device)
                kwargs.update({_cache_argument(decoder): _select_cache(model, cache, item_rows)},
                              attention_mask=torch.cat([prefix_valid, valid], dim=1))
            with autocast:
                out = decoder(input_ids=ids, use_cache=cache is not None, **kwargs)
            rows = _index([r for r, (i, c) in enumerate(chosen) for _ in batch[i].tail_at[c]], device)
            cols = _index([k for i, c in chosen for k in batch[i].tail_at[c]], device)
            hidden.append(out.last_hidden_state[rows, cols])
            targets += [t for i, c in chosen for t in batch[i].tail_targets[c]]
            owners += [(i, c) for i, c in chosen for _ in batch[i].tail_at[c]]
    token_ll = _target_logprobs(model, torch.cat(hidden), _index(targets, device))
    sums = [np.zeros(len(item.tails)) for item in batch]
    for (i, c), ll in zip(owners, token_ll, strict=True):
        sums[i][c] += ll
    return sums


def _index(values: list[int], device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)


def _target_logprobs(model, hidden: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """log P(target) at each hidden state: the output head and log-softmax in fp32, in memory-sized chunks."""
    head = model.get_output_embeddings()
    hidden = hidden.to(head.weight.dtype)
    chunk = max(1, HEAD_BYTES // (4 * head.weight.shape[0]))
    out = []
    for start in range(0, len(hidden), chunk):
        logprobs = torch.log_softmax(head(hidden[start:start + chunk]).float(), dim=-1)
        out.append(logprobs.gather(1, targets[start:start + chunk, None])[:, 0])
    return torch.cat(out).double().cpu().numpy()


def _check_model(model) -> None:
    # The scorer applies the output head itself, so logits must be head(last hidden state), nothing more.
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        raise BadValue(f"{type(model).__name__} post-processes its logits (softcapping or scaling), which this "
                       "scorer does not apply; score it with lm-evaluation-harness instead")
    if model.get_output_embeddings() is None:
        raise BadValue(f"{type(model).__name__} has no output head; pass a causal LM (AutoModelForCausalLM)")


def score_items(model, tokenizer, items: Sequence[Item], batch_size: int = 32, max_length: int | None = None,
                progress: bool = True, precision: str = "fp32", max_tokens: int | None = None) -> pd.DataFrame:
    """Log-likelihood of every choice of every item: the tidy `items` table (one row per item and choice).

    `batch_size` caps the items of one forward pass and `max_tokens` (default `token_budget(model)`) its
    padded tokens; neither changes a log-likelihood beyond float rounding. `precision` fp32 or bf16 (the
    decoder under bf16 autocast, the output head and log-softmax in fp32)."""
    if precision not in PRECISIONS:
        raise BadValue(f"precision = {precision!r}; the scorer computes in {' or '.join(PRECISIONS)} "
                       "(resolve auto first)")
    if batch_size < 1 or (max_tokens is not None and max_tokens < 1):
        raise BadValue(f"batch_size = {batch_size}, max_tokens = {max_tokens}; both must be at least 1")
    _check_model(model)
    model.eval()
    max_length = max_length or default_max_length(model)
    max_tokens = max_tokens or token_budget(model)
    encoded = encode_items(tokenizer, items)
    too_long = sum(len(cont) > max_length for choices in encoded for _, cont in choices)
    if too_long:
        warnings.warn(f"{too_long} continuations are longer than max_length = {max_length} tokens; each is scored "
                      "on its last max_length tokens (n_tokens says how many)", stacklevel=2)
    shared = [split_item(choices, max_length) for choices in encoded]
    lengths = [max(1, len(s.prefix)) for s in shared]
    order = sorted(range(len(shared)), key=lambda i: (-lengths[i], -max(map(len, shared[i].tails))))
    logliks: list[np.ndarray | None] = [None] * len(shared)
    for chunk in tqdm(_batches(lengths, order, max_tokens, batch_size), desc="scoring", unit="batch",
                      disable=not progress):
        for i, ll in zip(chunk, _score_batch(model, [shared[i] for i in chunk], precision == "bf16", max_tokens),
                         strict=True):
            logliks[i] = ll
    records = [
        (item.benchmark, item.item_id, choice, logliks[i][choice], min(len(encoded[i][choice][1]), max_length),
         len(continuation), item.gold)
        for i, item in enumerate(items) for choice, continuation in enumerate(item.continuations)
    ]
    table = pd.DataFrame.from_records(records, columns=ITEM_COLUMNS)
    return table.astype({"loglik": "float64", "choice": "int64", "n_tokens": "int64", "n_chars": "int64",
                         "gold": "int64"})


def score_checkpoint(model_dir: Path, ev: EvalConfig, items: Sequence[Item], progress: bool = True,
                     precision: str | None = None) -> pd.DataFrame:
    """Load a saved causal LM and its tokenizer and score `items` (a study's: benchmarks.scored_items).

    `precision` is the resolved fp32 | bf16 (a study passes precision.eval_precision's decision); without
    it an explicit ev.precision is used, and `auto` is bf16 on a GPU and fp32 on a CPU, the safe choice
    when no measurement for the study's shapes stands behind it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision is None:
        precision = ev.precision if ev.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return score_items(model, tokenizer, items, ev.batch_size, ev.max_length, progress, precision)
