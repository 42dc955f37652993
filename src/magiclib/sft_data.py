"""The SFT data: Tulu-v2-schema conversations, tokenized in the Tulu chat format with a loss mask.

Each conversation becomes one token sequence in the format of Tulu 2 (open-instruct):

    <|system|>\\n{system}\\n<|user|>\\n{user}\\n<|assistant|>\\n{reply}<|endoftext|>\\n<|user|>\\n...

and labels that are -100 everywhere except on the assistant replies and the eos that ends each, so the
loss is on what the assistant says. Sequences are written at full length; each scale cuts them to its own
seq_len at training time (see `train.SFTExamples`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from . import io
from .config import SFTDataConfig, StudyConfig
from .errors import BadValue
from .hub import HubSource, load_rows

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")
# A mirror folder name (no "/") stands in for the real Tulu-v2-mix, which is what the hub fallback loads.
TULU_HUB_ID = "allenai/tulu-v2-sft-mixture"


def sft_source(sd: SFTDataConfig) -> HubSource:
    """Where the instruction mix is: a hub id (owner/name), or a mirror folder sft/<dataset>/train.jsonl."""
    if "/" in sd.dataset:
        return HubSource(sd.dataset, None, "train", None)
    return HubSource(TULU_HUB_ID, None, "train", f"sft/{sd.dataset}/train.jsonl")


def load_sft_examples(sd: SFTDataConfig, seed: int, *, where: str = "auto") -> list[list[dict]]:
    """The conversations (lists of {role, content}) of the configured components, a fixed-seed sample."""
    rows = load_rows(sft_source(sd), where=where)
    if sd.components is not None:
        available = sorted(set(rows["dataset"]))
        unknown = sorted(set(sd.components) - set(available))
        if unknown:
            raise BadValue(f"sft_data.components {unknown} are not in {sd.dataset}; available: {available}")
        wanted = set(sd.components)
        rows = rows.filter(lambda name: name in wanted, input_columns="dataset")
    if sd.max_examples is not None and sd.max_examples < len(rows):
        rows = rows.select(np.sort(np.random.default_rng(seed).choice(len(rows), sd.max_examples, replace=False)))
    conversations = list(rows["messages"])
    for i, messages in enumerate(conversations):
        _check_conversation(messages, i)
    return [[{"role": m["role"], "content": m["content"]} for m in messages] for messages in conversations]


def _check_conversation(messages: list[dict], index: int) -> None:
    roles = [m.get("role") for m in messages]
    if not roles or any(r not in ROLES for r in roles) or "assistant" not in roles:
        raise BadValue(
            f"SFT example {index} has roles {roles}; every example needs Tulu-schema messages with roles in "
            f"{ROLES} and at least one assistant turn (check sft_data.dataset)"
        )


def chat_segments(messages: list[dict], eos: str) -> list[tuple[str, bool]]:
    """The conversation as (text, is_target) pieces in the Tulu format; targets are replies and their eos."""
    segments = []
    for message in messages:
        role, content = message["role"], message["content"].strip()
        if role == "assistant":
            segments.append(("<|assistant|>\n", False))
            segments.append((content + eos, True))
            segments.append(("\n", False))
        else:
            segments.append((f"<|{role}|>\n{content}\n", False))
    return segments


def tokenize_conversations(conversations: list[list[dict]], tokenizer: PreTrainedTokenizerBase,
                           progress: bool = True) -> list[tuple[list[int], list[int]]]:
    """input_ids and labels (-100 outside assistant replies) of every conversation.

    Pieces are tokenized separately so the mask follows piece boundaries exactly; the chat markers are
    special tokens, so splitting at them changes nothing, and a reply starts after a newline.
    """
    _check_chat_tokens(tokenizer)
    pieces = [chat_segments(messages, tokenizer.eos_token) for messages in conversations]
    flat = [text for segments in pieces for text, _ in segments]
    encoded = tokenizer(flat, add_special_tokens=False)["input_ids"]
    out, position = [], 0
    for segments in tqdm(pieces, desc="tokenize SFT", unit="example", disable=not progress, mininterval=1.0):
        input_ids, labels = [], []
        for _, is_target in segments:
            ids = encoded[position]
            position += 1
            input_ids.extend(ids)
            labels.extend(ids if is_target else [IGNORE_INDEX] * len(ids))
        out.append((input_ids, labels))
    return out


def _check_chat_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    markers = ["<|system|>", "<|user|>", "<|assistant|>"]
    missing = [m for m in markers if len(tokenizer.encode(m, add_special_tokens=False)) != 1]
    if tokenizer.eos_token is None or missing:
        raise BadValue(
            f"the tokenizer lacks the Tulu chat tokens {missing or ['eos']}; build it with eos <|endoftext|> "
            f"and additional special tokens {markers} (see magiclib.data's tokenizer step)"
        )


def build_sft_dataset(cfg: StudyConfig, tokenizer_dir: Path, out_dir: Path, seed: int) -> dict:
    """Tokenize the study's SFT mix into out_dir/sft.parquet (input_ids, labels, n_tokens, n_targets)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    conversations = load_sft_examples(cfg.sft_data, seed, where=cfg.data.source)
    encoded = tokenize_conversations(conversations, tokenizer)
    frame = pd.DataFrame({
        "input_ids": [np.asarray(ids, dtype=np.int32) for ids, _ in encoded],
        "labels": [np.asarray(labels, dtype=np.int32) for _, labels in encoded],
    })
    frame["n_tokens"] = frame["input_ids"].map(len)
    frame["n_targets"] = frame["labels"].map(lambda labels: int((labels != IGNORE_INDEX).sum()))
    io.write_parquet(Path(out_dir) / "sft.parquet", frame)
    lengths = frame["n_tokens"].to_numpy()
    return {
        "examples": len(frame),
        "tokens": int(lengths.sum()),
        "target_tokens": int(frame["n_targets"].sum()),
        "mean_tokens": float(lengths.mean()),
        "max_tokens": int(lengths.max()),
        # seq_len is per scale: the share of examples each scale's SFT cuts short.
        "truncated_share": {name: float((lengths > scale.sft.seq_len + 1).mean()) for name, scale in cfg.scales.items()},
    }
