"""The benchmark registry: adapters on real mirror rows, subsampling, and the errors for bad input."""

import collections
import json

import pandas as pd
import pytest

from magiclib import benchmarks, paths
from magiclib.config import ConfigError, EvalConfig
from magiclib.hub import load_rows

needs_mirror = pytest.mark.skipif(paths.find_mirror() is None, reason="needs the local data mirror")

# Row 1 of each mirror file, read by hand: (number of choices, gold index, gold continuation, context ending).
ROW_1 = {
    "hellaswag": (4, 3, "stands and lifts the weight over her head.", "grabs the pole. the lady"),
    "piqa": (2, 1, "finish, woodgrain with  bobby pin ", "Question: dresser\nAnswer:"),
    "copa": (2, 1, " she lost her appetite.", "The girl found a bug in her cereal therefore"),
    "winogrande": (2, 0, "always got the harder cases.", "than Maria so "),
    "social_iqa": (3, 0, "sympathetic", "How would you describe Sydney?\nA:"),
    "commonsense_qa": (5, 0, "A", "\nA. complete job\nB. learn from each other\nC. kill animals\nD. wear hats"
                                  "\nE. talk to each other\nAnswer:"),
    "boolq": (2, 1, "yes", "\nQuestion: is house tax and property tax are same?\nAnswer:"),
    "arc_easy": (4, 1, "breathing mask", "respiratory system?\nAnswer:"),
    "arc_challenge": (4, 1, "buildings will be made safer", "different building designs?\nAnswer:"),
    "sciq": (4, 3, "clone", "an organism?\nAnswer:"),
    "openbookqa": (4, 0, "a marsh", "There is most likely going to be fog around:"),
    "mnli": (3, 2, "False", "are not able to be searched. True, False or Neither?\nAnswer:"),
    "qnli": (2, 1, "no", "\nQuestion: Does this response answer the question?\nAnswer:"),
    "rte": (2, 0, "True", "Bacteria is winning the war against antibiotics. True or False?\nAnswer:"),
    "cb": (3, 2, "Neither", "\nQuestion: there is a shipment. True, False, or Neither?\nAnswer:"),
    "wic": (2, 0, "no", "Is the word 'stripe' used in the same way in the two sentences above?\nAnswer:"),
    "wsc": (2, 1, "yes", 'does the pronoun "*his*" refer to "*Mr. Moncrieff*"?\nAnswer:'),
    "multirc": (2, 0, "Yes\nIs the answer correct? yes", "how much force you have to use to pick it up?\nAnswer:"),
    "mrpc": (2, 0, "no", "\nQuestion: Do both sentences mean the same thing?\nAnswer:"),
    "sst2": (2, 0, "negative", "unflinchingly bleak and desperate \nQuestion: Is this sentence positive or negative?"
                               "\nAnswer:"),
    "anli_r1": (3, 0, "True", "larger football stadiums in Europe. True, False, or Neither?\nAnswer:"),
    "anli_r2": (3, 1, "Neither", "in September 2008 True, False, or Neither?\nAnswer:"),
    "anli_r3": (3, 0, "True", "No children were killed in the accident. True, False, or Neither?\nAnswer:"),
    "wsc273": (2, 1, " advocated violence.", "refused the demonstrators a permit because "),
}

# Gold-label counts over whole files, from the mirror's SOURCES.md (MultiRC: gold 0 is "yes", label 1).
GOLD_COUNTS = {
    "copa": {0: 55, 1: 45}, "cb": {0: 23, 1: 28, 2: 5}, "winogrande": {0: 628, 1: 639},
    "social_iqa": {0: 643, 1: 654, 2: 657}, "mnli": {0: 3479, 1: 3123, 2: 3213}, "sciq": {3: 1000},
    "arc_easy": {0: 596, 1: 585, 2: 633, 3: 561, 4: 1}, "multirc": {0: 2075, 1: 2773}, "wsc273": {0: 137, 1: 136},
}


def test_registry_lists_the_study_in_design_order():
    assert len(benchmarks.STUDY_BENCHMARKS) == 20
    assert list(benchmarks.CATEGORIES) == ["commonsense", "science", "nli", "semantic"]
    assert [len(v) for v in benchmarks.CATEGORIES.values()] == [7, 4, 4, 5]
    assert sum(benchmarks.CATEGORIES.values(), []) == benchmarks.STUDY_BENCHMARKS
    assert {"anli_r1", "anli_r2", "anli_r3", "wsc273", "qqp"} <= set(benchmarks.BENCHMARKS)
    assert benchmarks.BENCHMARKS["qqp"].source.mirror_path is None
    for bench in benchmarks.BENCHMARKS.values():
        assert bench.score_rule in benchmarks.SCORE_RULES
        assert bench.category in benchmarks.CATEGORIES


@needs_mirror
@pytest.mark.parametrize("name", sorted(ROW_1))
def test_adapter_on_a_real_mirror_row(name):
    bench = benchmarks.BENCHMARKS[name]
    n_choices, gold, gold_text, context_end = ROW_1[name]
    prompt = bench.adapter(load_rows(bench.source)[1])
    assert len(prompt.continuations) == n_choices
    assert prompt.gold == gold
    assert prompt.continuations[gold] == gold_text
    if prompt.contexts:  # partial scoring: the gold option ends its own context
        assert all(ctx.startswith(prompt.context) for ctx in prompt.contexts)
        assert prompt.context.endswith(context_end)
    else:
        assert prompt.context.endswith(context_end)


@needs_mirror
@pytest.mark.slow
def test_every_mirror_row_gives_a_valid_item():
    for name, bench in benchmarks.BENCHMARKS.items():
        if bench.source.mirror_path is None:
            continue
        items = benchmarks.load_items(name)
        assert all(0 <= item.gold < len(item.continuations) and item.context for item in items), name
        if name in GOLD_COUNTS:
            assert dict(collections.Counter(item.gold for item in items)) == GOLD_COUNTS[name]


def test_requests_add_the_target_delimiter():
    plain = benchmarks.Item("boolq", "0", "Q?\nAnswer:", ["no", "yes"], 1)
    assert plain.requests() == [("Q?\nAnswer:", " no"), ("Q?\nAnswer:", " yes")]
    partial = benchmarks.Item("winogrande", "0", "So ", ["won.", "won."], 0, ["So Ann", "So Bo"])
    assert partial.requests() == [("So Ann", " won."), ("So Bo", " won.")]


@needs_mirror
def test_subsample_is_deterministic_and_nested():
    first = benchmarks.load_items("copa", 10, seed=0)
    assert [i.item_id for i in first] == [i.item_id for i in benchmarks.load_items("copa", 10, seed=0)]
    assert [i.item_id for i in first] != [i.item_id for i in benchmarks.load_items("copa", 10, seed=1)]
    assert {i.item_id for i in benchmarks.load_items("copa", 5, seed=0)} <= {i.item_id for i in first}
    ids = [int(i.item_id) for i in first]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert len(benchmarks.load_items("copa", 1000)) == 100 == len(benchmarks.load_items("copa"))


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(KeyError, match="known benchmarks: .*hellaswag"):
        benchmarks.load_items("hellaswagg")


def test_wrong_schema_names_the_file_and_the_field(tmp_path, monkeypatch):
    path = tmp_path / "benchmarks" / "copa" / "validation.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"text": "x", "choice1": "a", "choice2": "b", "question": "cause", "label": 0}) + "\n")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"copa/validation\.jsonl lacks the field 'premise'.*hub schema"):
        benchmarks.load_items("copa")


def test_bad_row_names_the_file_and_the_row(tmp_path, monkeypatch):
    path = tmp_path / "benchmarks" / "copa" / "validation.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"premise": "x.", "choice1": "a", "choice2": "b", "question": "why", "label": 0,
                                "idx": 0}) + "\n")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"copa/validation\.jsonl, row 0: cannot build a copa prompt"):
        benchmarks.load_items("copa")


def test_hub_only_benchmark_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="qqp has no copy in the data mirror"):
        benchmarks.load_items("qqp")


def test_benchmark_order_groups_by_category_then_appearance_unknown_categories_last():
    frame = pd.DataFrame({"benchmark": ["x", "wic", "piqa", "rte", "hellaswag", "wic"],
                          "category": ["reading", "semantic", "commonsense", "nli", "commonsense", "semantic"]})
    assert benchmarks.benchmark_order(frame) == ["piqa", "hellaswag", "rte", "wic", "x"]
    assert benchmarks.benchmark_order(frame, ["nli", "commonsense"]) == ["rte", "piqa", "hellaswag", "x", "wic"]


def test_scored_benchmarks_default_to_the_study_and_refuse_unknown_names():
    assert benchmarks.scored_benchmarks(EvalConfig()) == benchmarks.STUDY_BENCHMARKS
    assert benchmarks.scored_benchmarks(EvalConfig(benchmarks=["rte", "copa"])) == ["rte", "copa"]
    with pytest.raises(ConfigError, match="unknown eval.benchmarks 'nope'; allowed: "):
        benchmarks.scored_benchmarks(EvalConfig(benchmarks=["copa", "nope"]))


@needs_mirror
def test_scored_items_take_the_fixed_seed_sample_and_survive_a_round_trip(tmp_path):
    ev = EvalConfig(benchmarks=["copa", "rte"], items_per_benchmark=4)
    items = benchmarks.scored_items(ev)
    assert items == benchmarks.load_items("copa", 4, seed=0) + benchmarks.load_items("rte", 4, seed=0)
    benchmarks.write_items(tmp_path / "items.jsonl", items)
    assert benchmarks.read_items(tmp_path / "items.jsonl") == items
    everything = benchmarks.scored_items(EvalConfig(benchmarks=["copa"], items_per_benchmark=None))
    assert len(everything) == len(benchmarks.load_items("copa"))
