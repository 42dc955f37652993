"""Batched log-likelihood scoring of benchmark items, token for token as lm-evaluation-harness scores them.

Every choice is tokenized as lm-eval's `_encode_pair` does: trailing whitespace of the context moves to the
continuation, the context and the whole string are encoded, and the continuation is the tail of the whole
beyond the context's length. The model input is (context + continuation) left-truncated to max_length + 1
tokens, minus the last token, exactly as lm-eval's HF backend builds it.

Unlike lm-eval we run each item once, not once per choice: the choices' input sequences share a prefix (at
least the context), so one row holds the shared prefix followed by each choice's own tail, and a 4D attention
mask with restarted position ids lets every tail see only the prefix and itself. The output head runs only
at the positions that predict continuation tokens. Rows are sorted by length so batches carry little padding.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .benchmarks import Item
from .config import EvalConfig
from .errors import BadValue

ITEM_COLUMNS = ["benchmark", "item", "choice", "loglik", "n_tokens", "n_chars", "gold"]


@dataclass
class PackedItem:
    """One item as one model row: token ids, position ids, segment ids (0: shared, i + 1: choice i's tail),
    and for every continuation token the row position that predicts it, its id and its choice."""

    tokens: list[int]
    positions: list[int]
    segments: list[int]
    predict_at: list[int]
    targets: list[int]
    choice_of_target: list[int]


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


def pack_item(choices: list[tuple[list[int], list[int]]], max_length: int) -> PackedItem:
    """One row scoring all choices of an item: their common input prefix once, then each choice's tail."""
    inputs, targets = [], []
    for context_enc, continuation_enc in choices:
        inputs.append((context_enc + continuation_enc)[-(max_length + 1):][:-1])
        # lm-eval refuses a continuation longer than the window; we score the tail that fits (see score_items)
        targets.append(continuation_enc[-max_length:])
    shared = _common_prefix_length(inputs)
    row = PackedItem(inputs[0][:shared], list(range(shared)), [0] * shared, [], [], [])
    for choice, (seq, target) in enumerate(zip(inputs, targets, strict=True)):
        offset = len(row.tokens)
        row.tokens += seq[shared:]
        row.positions += range(shared, len(seq))
        row.segments += [choice + 1] * (len(seq) - shared)
        # input position k predicts token k + 1; the last len(target) positions predict the continuation
        for k in range(len(seq) - len(target), len(seq)):
            row.predict_at.append(k if k < shared else offset + k - shared)
        row.targets += target
        row.choice_of_target += [choice] * len(target)
    return row


def _common_prefix_length(seqs: list[list[int]]) -> int:
    shortest = min(len(s) for s in seqs)
    for k in range(shortest):
        if any(s[k] != seqs[0][k] for s in seqs[1:]):
            return k
    return shortest


def _batch_tensors(rows: list[PackedItem], dtype: torch.dtype, device) -> dict[str, torch.Tensor]:
    """Right-padded ids and positions, and the additive 4D mask: a token sees earlier positions of the shared
    prefix and of its own segment. Padding only sees padding, so no attention row is empty."""
    width = max(len(r.tokens) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.tokens)
        tokens[i, :n] = torch.tensor(row.tokens)
        positions[i, :n] = torch.tensor(row.positions)
        segments[i, :n] = torch.tensor(row.segments)
    positions, segments = positions.to(device), segments.to(device)
    query_pos, key_pos = positions[:, :, None], positions[:, None, :]
    query_seg, key_seg = segments[:, :, None], segments[:, None, :]
    visible = (key_pos <= query_pos) & ((key_seg == query_seg) | ((key_seg == 0) & (query_seg >= 0)))
    mask = torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill_(~visible, torch.finfo(dtype).min)
    return {"input_ids": tokens.to(device), "position_ids": positions, "attention_mask": mask[:, None]}


@torch.inference_mode()
def _score_rows(model, rows: list[PackedItem], bf16: bool = False) -> list[np.ndarray]:
    """Summed continuation log-likelihood per choice, for a batch of packed rows.

    With bf16 the decoder's matrix products run under bf16 autocast; the output head and the log-softmax
    stay fp32 (the head of a continuation token is a small share of the work, and its rounding the largest)."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    batch = _batch_tensors(rows, model.dtype, model.device)
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = decoder(**batch, use_cache=False).last_hidden_state
    hidden = hidden.to(head.weight.dtype)
    row_index = torch.tensor([i for i, r in enumerate(rows) for _ in r.predict_at], device=model.device)
    col_index = torch.tensor([k for r in rows for k in r.predict_at], device=model.device)
    targets = torch.tensor([t for r in rows for t in r.targets], device=model.device)
    logprobs = torch.log_softmax(head(hidden[row_index, col_index]).float(), dim=-1)
    token_ll = logprobs.gather(1, targets[:, None])[:, 0].double().cpu().numpy()
    out, start = [], 0
    for row in rows:
        n = len(row.targets)
        out.append(np.bincount(row.choice_of_target, weights=token_ll[start:start + n]))
        start += n
    return out


def _check_model(model) -> None:
    # The scorer applies the output head itself, so logits must be head(last hidden state), nothing more.
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        raise BadValue(f"{type(model).__name__} post-processes its logits (softcapping or scaling), which this "
                       "scorer does not apply; score it with lm-evaluation-harness instead")
    if model.get_output_embeddings() is None:
        raise BadValue(f"{type(model).__name__} has no output head; pass a causal LM (AutoModelForCausalLM)")


def score_items(model, tokenizer, items: Sequence[Item], batch_size: int = 32, max_length: int | None = None,
                progress: bool = True, precision: str = "fp32") -> pd.DataFrame:
    """Log-likelihood of every choice of every item: the tidy `items` table (one row per item and choice).

    `precision` fp32 or bf16 (decoder under bf16 autocast, see `_score_rows`)."""
    if precision not in ("fp32", "bf16"):
        raise BadValue(f"precision = {precision!r}; the scorer computes in fp32 or bf16 (resolve auto first)")
    if batch_size < 1:
        raise BadValue(f"batch_size = {batch_size}; it must be at least 1")
    _check_model(model)
    model.eval()
    max_length = max_length or default_max_length(model)
    encoded = encode_items(tokenizer, items)
    too_long = sum(len(cont) > max_length for choices in encoded for _, cont in choices)
    if too_long:
        warnings.warn(f"{too_long} continuations are longer than max_length = {max_length} tokens; each is scored "
                      "on its last max_length tokens (n_tokens says how many)", stacklevel=2)
    rows = [pack_item(choices, max_length) for choices in encoded]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].tokens))
    logliks: list[np.ndarray | None] = [None] * len(rows)
    for start in tqdm(range(0, len(order), batch_size), desc="scoring", unit="batch", disable=not progress):
        chunk = order[start:start + batch_size]
        for i, ll in zip(chunk, _score_rows(model, [rows[i] for i in chunk], precision == "bf16"), strict=True):
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
