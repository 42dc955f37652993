"""Step hashing: a changed value reruns exactly the steps downstream of it."""

from pathlib import Path

import pytest

from magiclib import steps
from magiclib.config import load_config
from magiclib.steps import Step

RESULTS = Path("/nonexistent")


def _dirs(cfg):
    pre = Step("pretrain", "V1-P0", "tiny", 0)
    return {
        "pools": steps.pools_dir(cfg, RESULTS),
        "tokenizer": steps.tokenizer_dir(cfg, RESULTS),
        "mixture": steps.mixture_dir(cfg, RESULTS, "V1-P0", 0),
        "pretrain": steps.step_dir(cfg, RESULTS, pre),
        "sft": steps.step_dir(cfg, RESULTS, Step("sft", "V1-P0", "tiny", 0)),
        "eval": steps.step_dir(cfg, RESULTS, Step("evaluate", "V1-P0", "tiny", 0, "SFT")),
    }


@pytest.mark.parametrize(
    "override, changed",
    [
        ("eval.items_per_benchmark=9", {"eval"}),
        ("scales.tiny.sft.lr=0.002", {"sft", "eval"}),
        ("scales.tiny.pretrain.max_steps=9", {"pretrain", "sft", "eval"}),
        ("data.tokens_per_mixture=12345", {"mixture", "pretrain", "sft", "eval"}),
        ("data.vocab_size=600", {"tokenizer", "mixture", "pretrain", "sft", "eval"}),
        ("data.docs_per_pool=99", {"pools", "tokenizer", "mixture", "pretrain", "sft", "eval"}),
        ("scales.tiny2.pretrain.lr=0.1", set()),
    ],
)
def test_a_change_reruns_exactly_what_is_downstream(override, changed):
    base, new = _dirs(load_config("smoke")), _dirs(load_config("smoke", [override]))
    assert {name for name in base if base[name] != new[name]} == changed


def test_seeds_key_mixtures_and_runs():
    cfg = load_config("smoke")
    assert steps.mixture_dir(cfg, RESULTS, "V1-P0", 0) != steps.mixture_dir(cfg, RESULTS, "V1-P0", 1)
    assert steps.pools_dir(cfg, RESULTS) == steps.pools_dir(load_config("smoke", ["seeds=[1]"]), RESULTS)


def test_step_validation():
    with pytest.raises(ValueError, match="stage PT or SFT"):
        Step("evaluate", "V1-P0", "tiny", 0)
    with pytest.raises(ValueError, match="unknown step kind"):
        Step("finetune", "V1-P0", "tiny", 0)
    assert Step("evaluate", "V1-P0", "tiny", 0, "PT").needs() == Step("pretrain", "V1-P0", "tiny", 0)
