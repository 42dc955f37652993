"""The trained byte-level BPE: saved as an HF fast tokenizer with the chat and pad specials, within budget."""

import pandas as pd
import pytest
from transformers import AutoTokenizer

from magiclib.config import ConfigError, load_config
from magiclib.data.tokenizer import CHAT_TOKENS, EOS, PAD, build_tokenizer, training_texts

TEXTS = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n",
         "Water boils at one hundred degrees Celsius at sea level."]


@pytest.fixture
def pools_dir(tmp_path):
    for pool in ["V1", "V2", "V3", "code_python", "code_go", "wikipedia", "technical", "reference", "books"]:
        (tmp_path / "pools" / pool).mkdir(parents=True)
        texts = [f"{TEXTS[i % 3]} {pool} {i}" for i in range(20)]
        frame = pd.DataFrame({"id": [f"{pool}-{i}" for i in range(20)], "text": texts, "source": pool})
        frame.to_parquet(tmp_path / "pools" / pool / "00000.parquet")
    return tmp_path


def test_trained_tokenizer_loads_with_special_tokens(pools_dir, tmp_path):
    cfg = load_config("smoke", ["data.vocab_size=300", "data.tokenizer_train_docs=40"])
    build_tokenizer(cfg, pools_dir, tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.eos_token == EOS and tokenizer.pad_token == PAD
    assert set(CHAT_TOKENS) <= set(tokenizer.all_special_tokens)
    assert len(tokenizer) <= 300
    for marker in CHAT_TOKENS:
        assert len(tokenizer.encode(marker, add_special_tokens=False)) == 1
    ids = tokenizer.encode("<|user|>\nhi there<|endoftext|>", add_special_tokens=False)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|user|>") and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer.encode("def add(a, b):", add_special_tokens=False)) == "def add(a, b):"
    assert not list((tmp_path / "tok").glob(".tokenizer-*"))  # the staging folder is gone


def test_training_texts_follow_the_mean_proportions(pools_dir):
    cfg = load_config("smoke", ["data.tokenizer_train_docs=80"])
    pools = [t.split()[-2] for t in training_texts(cfg, pools_dir)]
    # Mean shares over P0/P1/P2: web 0.45 (36 of 80, over V1-V3), code 0.35 (28, over two pools), curated 0.2.
    assert pools.count("V1") == pools.count("V3") == 12
    assert pools.count("code_go") == 14 and pools.count("books") == 4 and len(pools) == 80


def test_vocabulary_larger_than_the_model_is_refused(pools_dir, tmp_path):
    cfg = load_config("smoke", ["data.vocab_size=1024"])
    with pytest.raises(ConfigError, match="data.vocab_size = 1024 exceeds"):
        build_tokenizer(cfg, pools_dir, tmp_path / "tok")


def test_pretrained_tokenizer_gets_pad_and_chat_tokens_and_keeps_its_vocabulary(pools_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.train_from_iterator(TEXTS * 5, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>").save_pretrained(tmp_path / "pretrained")
    cfg = load_config("smoke", [f"data.tokenizer={tmp_path / 'pretrained'}"])
    build_tokenizer(cfg, pools_dir, tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token == PAD
    assert set(CHAT_TOKENS) <= set(tokenizer.all_special_tokens) and len(tokenizer) == 280 + 4
    assert tokenizer.encode("The quick fox", add_special_tokens=False) == backend.encode("The quick fox").ids
