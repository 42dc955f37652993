"""Step hashing: a changed value reruns exactly the steps downstream of it."""

import dataclasses
from pathlib import Path

import pytest

from magiclib import steps
from magiclib.config import DataConfig, load_config
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


# --- every config field keys the steps it shapes ------------------------------------------------------
# A field that joins no hash would let a changed value reuse stale results. These are outside every hash on
# purpose; anything else must change the folder of at least one step.
OUTSIDE_EVERY_HASH = {
    "StudyConfig.name": "names the results folder, not what is computed",
    "StudyConfig.mixtures": "chooses which steps are planned; each mixture's own steps are keyed by its name",
    "StudyConfig.seeds": "chooses which steps are planned; each seed keys its own steps",
    "ScaleConfig.gpus": "where a run goes on a cluster, not what it computes",
    "ScaleConfig.seeds": "chooses which steps are planned at that scale; each seed keys its own steps",
    "DataConfig.tasks": "parallel tokenisation tasks; the tokens written do not depend on it",
    "SlurmConfig.*": "cluster resources and throttling, not what is computed",
}


def _changed(value, hint: str, name: str):
    if name == "precision":  # a choice: another valid one
        return "bf16" if value != "bf16" else "fp32"
    if value is None:  # a valid value of the field's type
        return ["copa"] if "list" in hint else "changed" if "str" in hint else 7
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, list):
        return value[:-1] if value else ["changed"]
    raise TypeError(f"add a way to change a {type(value).__name__}")


def _all_dirs(cfg):
    step = Step("pretrain", "V1-P0", "tiny", 0)
    named = {"pools": steps.pools_dir(cfg, RESULTS), "tokenizer": steps.tokenizer_dir(cfg, RESULTS),
             "sft_data": steps.sft_data_dir(cfg, RESULTS), "eval_items": steps.eval_items_dir(cfg, RESULTS),
             "mixture": steps.mixture_dir(cfg, RESULTS, "V1-P0", 0)}
    for st in (step, Step("sft", "V1-P0", "tiny", 0), Step("evaluate", "V1-P0", "tiny", 0, "PT")):
        named[st.kind] = steps.step_dir(cfg, RESULTS, st)
    return named


def _fields(cfg):
    """(dotted name, owner, field name, owner's class name) for every leaf field of the config."""
    scale = cfg.scales["tiny"]
    owners = {"data": cfg.data, "sft_data": cfg.sft_data, "eval": cfg.eval, "scales.tiny": scale,
              "scales.tiny.model": scale.model, "scales.tiny.pretrain": scale.pretrain,
              "scales.tiny.sft": scale.sft, "slurm": cfg.slurm, "": cfg}
    for where, owner in owners.items():
        for f in dataclasses.fields(owner):
            value = getattr(owner, f.name)
            if dataclasses.is_dataclass(value) or isinstance(value, dict):
                continue  # a section: its own fields are listed (web_sources/proportions are tested below)
            yield f"{where}.{f.name}".lstrip("."), owner, f, type(owner).__name__


def test_every_config_field_is_part_of_a_step_hash_or_listed_as_outside():
    base = _all_dirs(load_config("smoke"))
    for name, _, field, cls in _fields(load_config("smoke")):
        outside = f"{cls}.{field.name}" in OUTSIDE_EVERY_HASH or f"{cls}.*" in OUTSIDE_EVERY_HASH
        cfg = load_config("smoke")
        target = next(o for n, o, _, _ in _fields(cfg) if n == name)
        # set past validation: hashing reads values only
        setattr(target, field.name, _changed(getattr(target, field.name), str(field.type), field.name))
        moved = {kind for kind, folder in _all_dirs(cfg).items() if folder != base[kind]}
        assert bool(moved) != outside, (
            f"{name} changes {sorted(moved) or 'no step folder'}; put it in a step hash (see steps.py) or list "
            "it in OUTSIDE_EVERY_HASH with the reason" if not outside else f"{name} is listed as outside every "
            f"hash but moves {sorted(moved)}")


def test_every_data_field_is_named_by_the_hash_of_the_data_it_shapes():
    fields = [f.name for f in dataclasses.fields(DataConfig)]
    claimed = steps.POOL_KEYS + steps.TOKENIZER_KEYS + steps.MIXTURE_KEYS
    outside = [f for f in fields if f"DataConfig.{f}" in OUTSIDE_EVERY_HASH]
    assert sorted(set(claimed) | set(outside)) == sorted(fields) and not set(claimed) & set(outside)
    # only curated_pools is named twice: it picks the pools that are filtered and the ones a mixture samples
    assert [k for k in set(claimed) if claimed.count(k) > 1] == ["curated_pools"]


def test_web_sources_and_proportions_key_the_data_they_shape():
    base = _all_dirs(load_config("smoke"))
    web = _all_dirs(load_config("smoke", ["web_sources.V1.code_pools=[code_go]"]))
    props = _all_dirs(load_config("smoke", ["proportions.P0.web=0.55", "proportions.P0.curated=0.2"]))
    assert {k for k in base if base[k] != web[k]} == {"pools", "tokenizer", "sft_data", "mixture", "pretrain",
                                                      "sft", "evaluate"}
    assert {k for k in base if base[k] != props[k]} == {"mixture", "pretrain", "sft", "evaluate"}


def test_per_scale_seeds_plan_more_runs_at_that_scale_only():
    cfg = load_config("smoke", ["scales.tiny.seeds=[0,1,2]"])
    assert (cfg.scale_seeds("tiny"), cfg.scale_seeds("tiny2"), cfg.all_seeds) == ([0, 1, 2], [0], [0, 1, 2])
    runs = {(st.scale, st.seed) for st in steps.plan(cfg) if st.kind == "pretrain"}
    assert runs == {("tiny", 0), ("tiny", 1), ("tiny", 2), ("tiny2", 0)}
    # the seed-0 steps are the same folders as without the extra seeds
    base = load_config("smoke")
    assert {steps.step_hash(base, st) for st in steps.plan(base)} <= {steps.step_hash(cfg, st) for st in steps.plan(cfg)}
    with pytest.raises(ValueError, match="distinct seeds"):
        load_config("smoke", ["scales.tiny.seeds=[1,1]"])
