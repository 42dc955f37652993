"""The scorer: lm-eval's tokenization, shared-context packing against naive scoring, batching invariance."""

import warnings

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from magiclib import benchmarks, paths, scorer
from magiclib.config import EvalConfig, ModelConfig
from magiclib.data.tokenizer import EOS, train_bpe
from magiclib.model import build_model

pytestmark = [pytest.mark.skipif(paths.find_mirror() is None, reason="needs the local data mirror"),
              pytest.mark.filterwarnings("ignore:.*longer than max_length = 64")]

CONTEXT = 64  # short enough that long passages (boolq, multirc) get left-truncated
NAMES = ["hellaswag", "copa", "winogrande", "boolq", "arc_easy", "multirc", "wsc273", "commonsense_qa"]


@pytest.fixture(scope="module")
def items():
    return [item for name in NAMES for item in benchmarks.load_items(name, 3, seed=0)]


@pytest.fixture(scope="module")
def tokenizer(items):
    texts = ["".join(pair) for item in items for pair in item.requests()]
    return PreTrainedTokenizerFast(tokenizer_object=train_bpe(texts * 4, 400), eos_token=EOS)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return build_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, head_dim=16, vocab_size=400,
                                   context=CONTEXT), seed=0).eval()


def naive_logliks(model, tokenizer, items, max_length):
    """lm-eval's HF loop, one (context, continuation) at a time: full logits, log-softmax, gather.
    A continuation longer than the window is scored on the tail that fits, as our scorer does."""
    out = []
    for choices in scorer.encode_items(tokenizer, items):
        for context_enc, continuation_enc in choices:
            inputs = (context_enc + continuation_enc)[-(max_length + 1):][:-1]
            continuation_enc = continuation_enc[-max_length:]
            with torch.no_grad():
                logprobs = torch.log_softmax(model(torch.tensor([inputs])).logits[0].float(), dim=-1)
            span = range(len(inputs) - len(continuation_enc), len(inputs))
            out.append(sum(logprobs[k, t].item() for k, t in zip(span, continuation_enc, strict=True)))
    return np.array(out)


def test_encoding_moves_trailing_space_to_the_continuation(tokenizer):
    item = benchmarks.Item("boolq", "0", "Is it so?\nAnswer: ", ["yes", "no"], 0)
    (context_enc, continuation_enc), _ = scorer.encode_items(tokenizer, [item])[0]
    assert context_enc == tokenizer("Is it so?\nAnswer:")["input_ids"]
    whole = tokenizer("Is it so?\nAnswer:  yes")["input_ids"]
    assert continuation_enc == whole[len(context_enc):]


def test_shared_context_scoring_equals_naive_scoring(model, tokenizer, items):
    encoded = scorer.encode_items(tokenizer, items)
    assert any(len(c) + len(k) > CONTEXT + 1 for choices in encoded for c, k in choices), "nothing truncated"
    table = scorer.score_items(model, tokenizer, items, batch_size=8, progress=False)
    np.testing.assert_allclose(table["loglik"], naive_logliks(model, tokenizer, items, CONTEXT), atol=1e-4, rtol=0)


def test_batch_size_does_not_change_logliks(model, tokenizer, items):
    one = scorer.score_items(model, tokenizer, items, batch_size=1, progress=False)
    many = scorer.score_items(model, tokenizer, items, batch_size=32, progress=False)
    np.testing.assert_allclose(one["loglik"], many["loglik"], atol=1e-5, rtol=0)


def test_items_table_is_tidy(model, tokenizer, items):
    table = scorer.score_items(model, tokenizer, items, progress=False)
    assert list(table.columns) == scorer.ITEM_COLUMNS
    assert len(table) == sum(len(item.continuations) for item in items)
    assert table["loglik"].dtype == np.float64 and (table["loglik"] < 0).all()
    first = items[0]
    rows = table[(table["benchmark"] == first.benchmark) & (table["item"] == first.item_id)]
    assert rows["choice"].tolist() == list(range(len(first.continuations)))
    assert rows["n_chars"].tolist() == [len(c) for c in first.continuations]
    assert set(rows["gold"]) == {first.gold}


def test_too_long_continuations_are_scored_on_their_tail_with_a_warning(model, tokenizer, items):
    with pytest.warns(UserWarning, match="longer than max_length = 4"):
        table = scorer.score_items(model, tokenizer, items, max_length=4, progress=False)
    assert table["n_tokens"].max() == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scorer.score_items(model, tokenizer, items[:2], progress=False)


def test_score_checkpoint_reads_a_saved_model(model, tokenizer, items, tmp_path):
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    ev = EvalConfig(benchmarks=["copa", "wsc"], items_per_benchmark=3, batch_size=4)
    table = scorer.score_checkpoint(tmp_path, ev, benchmarks.scored_items(ev), progress=False)
    direct = scorer.score_items(model, tokenizer, benchmarks.load_items("copa", 3) + benchmarks.load_items("wsc", 3),
                                progress=False)
    np.testing.assert_allclose(table["loglik"], direct["loglik"], atol=1e-5, rtol=0)
    assert table["item"].tolist() == direct["item"].tolist()
