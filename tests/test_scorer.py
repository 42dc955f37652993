"""The scorer: lm-eval's tokenization, shared-context packing against naive scoring, batching invariance."""

import itertools
import types
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


def test_split_item_shares_the_prefix_and_predicts_every_token():
    # choice 0 runs [1 2 3 4] to predict 4 5; choice 1 runs [1 2 3] to predict 6: it needs no tail of its own
    shared = scorer.split_item([([1, 2, 3], [4, 5]), ([1, 2, 3], [6])], max_length=100)
    assert shared.prefix == [1, 2, 3] and shared.tails == [[4], []]
    assert list(zip(shared.prefix_at, shared.prefix_targets, shared.prefix_choice, strict=True)) == [(2, 4, 0),
                                                                                                    (2, 6, 1)]
    assert shared.tail_at == [[0], []] and shared.tail_targets == [[5], []]


def test_a_small_token_budget_does_not_change_logliks(model, tokenizer, items):
    # 16 tokens a forward: every batch holds one item and the tails of one item go in several passes
    default = scorer.score_items(model, tokenizer, items, progress=False)
    small = scorer.score_items(model, tokenizer, items, progress=False, max_tokens=16)
    np.testing.assert_allclose(default["loglik"], small["loglik"], atol=1e-5, rtol=0)


def test_bf16_autocast_scores_close_to_fp32(model, tokenizer, items):
    fp32 = scorer.score_items(model, tokenizer, items, progress=False)["loglik"].to_numpy()
    bf16 = scorer.score_items(model, tokenizer, items, progress=False, precision="bf16")["loglik"].to_numpy()
    assert not np.array_equal(fp32, bf16)  # the decoder really ran in bf16
    np.testing.assert_allclose(bf16, fp32, rtol=3e-2, atol=0.1)
    with pytest.raises(ValueError, match="fp32 or bf16"):
        scorer.score_items(model, tokenizer, items, progress=False, precision="fp16")


def test_token_budget_is_a_cpu_work_unit_or_a_share_of_free_gpu_memory(model, monkeypatch):
    config = model.config
    assert scorer.token_budget(model) == scorer.CPU_ACTIVATION_BYTES // (4 * (32 + config.intermediate_size))
    on_gpu = types.SimpleNamespace(config=model.config, device=torch.device("cuda"))
    per_token = scorer._kv_bytes_per_token(model) + 4 * (6 * config.hidden_size + 3 * config.intermediate_size)
    assert scorer._kv_bytes_per_token(model) == 2 * config.num_hidden_layers * config.num_key_value_heads * 16 * 4
    for free in (2**28, 2**31):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 2 * free))
        assert scorer.token_budget(on_gpu) == min(2**17, int(scorer.GPU_MEMORY_SHARE * free // per_token))


def test_batches_are_the_cheapest_partition_within_the_limits():
    lengths = [60, 58, 55, 50, 12, 10, 1, 1, 1]
    order, max_tokens, max_rows = list(range(len(lengths))), 200, 4

    def cost(runs):
        return sum(len(r) * lengths[r[0]] + scorer.PASS_COST_TOKENS for r in runs)

    def fits(runs):
        return all(len(r) <= max_rows and (len(r) == 1 or len(r) * lengths[r[0]] <= max_tokens) for r in runs)

    every = []  # all 2^8 ways to cut the sorted rows into consecutive runs
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):
        runs, current = [], [0]
        for i, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(current)
                current = []
            current.append(i)
        every.append([*runs, current])
    batches = scorer._batches(lengths, order, max_tokens, max_rows)
    assert [i for b in batches for i in b] == order and fits(batches)
    assert cost(batches) == min(cost(runs) for runs in every if fits(runs))
    assert len(batches) > 1  # the 60-token rows do not pad the 1-token ones
