"""Tests of the SFT data: Tulu chat format, the assistant-only loss mask, loading and the parquet it writes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from magiclib import sft_data
from magiclib.config import SFTDataConfig, StudyConfig
from magiclib.paths import find_mirror

CHAT_SPECIALS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"]
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another?"},
    {"role": "assistant", "content": " Red. "},
]


def make_chat_tokenizer(folder: Path, texts: list[str] = (), vocab_size: int = 300) -> Path:
    """A tiny byte-level BPE with the Tulu chat specials, shaped like the data step's tokenizer."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    text = ["Name a colour. Blue. Red. The quick brown fox jumps over the lazy dog.\n" * 3] * 20 + list(texts)
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_SPECIALS,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"])
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(make_chat_tokenizer(tmp_path_factory.mktemp("tok")))


def test_chat_format_is_tulus():
    text = "".join(piece for piece, _ in sft_data.chat_segments(CONVERSATION, "<|endoftext|>"))
    assert text == ("<|system|>\nYou are terse.\n<|user|>\nName a colour.\n<|assistant|>\nBlue.<|endoftext|>\n"
                    "<|user|>\nAnother?\n<|assistant|>\nRed.<|endoftext|>\n")


def test_only_assistant_replies_and_their_eos_are_targets(tokenizer):
    [(input_ids, labels)] = sft_data.tokenize_conversations([CONVERSATION], tokenizer, progress=False)
    assert len(input_ids) == len(labels)
    assert tokenizer.decode(input_ids) == "".join(p for p, _ in sft_data.chat_segments(CONVERSATION, "<|endoftext|>"))
    targets = [t for t, lab in zip(input_ids, labels, strict=True) if lab != sft_data.IGNORE_INDEX]
    assert tokenizer.decode(targets) == "Blue.<|endoftext|>Red.<|endoftext|>"
    assert all(lab in (t, sft_data.IGNORE_INDEX) for t, lab in zip(input_ids, labels, strict=True))


def test_tokenizer_without_chat_tokens_is_refused(tmp_path):
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    bpe.train_from_iterator(["plain text only"], trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"]))
    plain = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    with pytest.raises(ValueError, match="lacks the Tulu chat tokens"):
        sft_data.tokenize_conversations([CONVERSATION], plain, progress=False)


def test_bad_conversation_is_refused():
    with pytest.raises(ValueError, match="at least one assistant turn"):
        sft_data._check_conversation([{"role": "user", "content": "hi"}], 3)


def test_hub_id_and_mirror_folder_sources():
    hub = sft_data.sft_source(SFTDataConfig(dataset="allenai/tulu-v2-sft-mixture"))
    assert hub.mirror_path is None and hub.hub_call() == {"path": "allenai/tulu-v2-sft-mixture", "split": "train",
                                                            "streaming": False}
    assert sft_data.sft_source(SFTDataConfig(dataset="tulu-mini")).mirror_path == "sft/tulu-mini/train.jsonl"


needs_mirror = pytest.mark.skipif(find_mirror() is None, reason="needs the data mirror (../shared/data)")


@needs_mirror
@pytest.mark.slow
def test_build_sft_dataset_from_the_mirror(tmp_path, tokenizer):
    cfg = StudyConfig(sft_data=SFTDataConfig(max_examples=12, components=["cot", "oasst1"]))
    summary = sft_data.build_sft_dataset(cfg, Path(tokenizer.name_or_path), tmp_path / "out", seed=0)
    frame = pd.read_parquet(tmp_path / "out" / "sft.parquet")
    assert summary["examples"] == len(frame) == 12
    first = frame.iloc[0]
    assert first["n_tokens"] == len(first["input_ids"]) == len(first["labels"])
    targets = np.asarray(first["labels"]) != sft_data.IGNORE_INDEX
    assert 0 < targets.sum() == first["n_targets"] < len(targets)
    assert np.asarray(first["input_ids"])[targets][-1] == tokenizer.eos_token_id  # a reply ends with eos
    again = sft_data.load_sft_examples(cfg.sft_data, seed=0)
    assert len(again) == 12 and again == sft_data.load_sft_examples(cfg.sft_data, seed=0)
    assert again != sft_data.load_sft_examples(cfg.sft_data, seed=1)
