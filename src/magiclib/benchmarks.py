"""The benchmark registry: 20 multiple-choice benchmarks in 4 categories, as lm-evaluation-harness prompts them.

Each `Benchmark` names its split on the hub and in the data mirror (a `HubSource`) and holds an adapter that
turns one hub-schema row into a prompt exactly as lm-evaluation-harness 0.4 builds it zero-shot (its
`doc_to_text`, `doc_to_choice`, `doc_to_target` and preprocessing), so our scores mean what the field's mean.
`load_items` reads a benchmark (all rows or a fixed-seed subsample) into `Item`s the scorer consumes;
`scored_items` is the one place that turns an `EvalConfig` (which benchmarks, how many items each) into the
items a study scores, and `write_items` / `read_items` keep them as jsonl. The registry also owns the
category order and the benchmark order every table and chart uses.

One deliberate deviation: lm-eval's MultiRC config lists the choices as ["... yes", "... no"] but takes the
gold index from `label` (1 = the answer is correct), which points at "no". We keep its prompt and choices
and use the right gold (0 when the answer is correct), as lm-eval 0.3 and lighteval do.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import io, paths
from .config import ConfigError, EvalConfig
from .errors import BadValue, MissingFile, UnknownName
from .hub import HubSource, load_rows

# lm-eval puts this between the context and every continuation (its `target_delimiter`).
TARGET_DELIMITER = " "
SCORE_RULES = ("acc", "acc_norm")


@dataclass
class Item:
    """One multiple-choice question, ready to score.

    Choice i is scored as log P(TARGET_DELIMITER + continuations[i] | context). Partial-scoring tasks
    (winogrande, wsc273) put the choices in the context instead: then `contexts[i]` replaces `context` for
    choice i and the continuations are all the same text; `context` keeps the part the contexts share.
    """

    benchmark: str
    item_id: str
    context: str
    continuations: list[str]
    gold: int
    contexts: list[str] | None = None

    def requests(self) -> list[tuple[str, str]]:
        """The (context, continuation) pairs lm-eval scores for this item, delimiter included."""
        contexts = self.contexts or [self.context] * len(self.continuations)
        return [(ctx, TARGET_DELIMITER + cont) for ctx, cont in zip(contexts, self.continuations, strict=True)]


class Prompt(NamedTuple):
    """What an adapter makes of one row (an `Item` without its benchmark and id)."""

    context: str
    continuations: list[str]
    gold: int
    contexts: list[str] | None = None


@dataclass(frozen=True)
class Benchmark:
    """A registry entry: where the rows live, how a row becomes a prompt, which score is primary."""

    name: str
    category: str
    source: HubSource
    adapter: Callable[[dict], Prompt]
    fields: tuple[str, ...]  # hub-schema columns the adapter reads
    score_rule: str = "acc"  # the primary rule: acc (raw log-likelihood) or acc_norm (per character)
    lm_eval_task: str | None = None  # the lm-evaluation-harness task whose prompt the adapter copies


# --- adapters: one per lm-eval task config ------------------------------------------------------------


def _hellaswag_clean(text: str) -> str:
    # lm-eval hellaswag/utils.py `preprocess`: strips WikiHow markup.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict) -> Prompt:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return Prompt(_hellaswag_clean(row["activity_label"] + ": " + ctx),
                  [_hellaswag_clean(ending) for ending in row["endings"]], int(row["label"]))


def _piqa(row: dict) -> Prompt:
    return Prompt(f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int(row["label"]))


def _copa(row: dict) -> Prompt:
    connector = {"cause": "because", "effect": "therefore"}[row["question"]]
    choices = [" " + c[0].lower() + c[1:] for c in (row["choice1"], row["choice2"])]
    return Prompt(row["premise"].strip()[:-1] + f" {connector}", choices, int(row["label"]))


def _winogrande(row: dict) -> Prompt:
    blank = row["sentence"].index("_")
    prefix = row["sentence"][:blank]
    continuation = row["sentence"][blank + 1:].strip()
    contexts = [prefix + row["option1"], prefix + row["option2"]]
    return Prompt(prefix, [continuation, continuation], {"1": 0, "2": 1}[row["answer"]], contexts)


def _social_iqa(row: dict) -> Prompt:
    return Prompt(f"Q: {row['context']} {row['question']}\nA:",
                  [row["answerA"], row["answerB"], row["answerC"]], int(row["label"]) - 1)


def _commonsense_qa(row: dict) -> Prompt:
    letters = ["A", "B", "C", "D", "E"]
    texts = row["choices"]["text"]
    options = "".join(f"\n{letter}. {texts[i]}" for i, letter in enumerate(letters))
    return Prompt(f"Question: {row['question'].strip()}{options}\nAnswer:", letters, letters.index(row["answerKey"]))


def _boolq(row: dict) -> Prompt:
    return Prompt(f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", ["no", "yes"], int(row["label"]))


def _arc(row: dict) -> Prompt:
    return Prompt(f"Question: {row['question']}\nAnswer:", list(row["choices"]["text"]),
                  row["choices"]["label"].index(row["answerKey"]))


def _sciq(row: dict) -> Prompt:
    choices = [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]]
    return Prompt(f"{row['support'].lstrip()}\nQuestion: {row['question']}\nAnswer:", choices, 3)


def _openbookqa(row: dict) -> Prompt:
    return Prompt(row["question_stem"], list(row["choices"]["text"]),
                  row["choices"]["label"].index(row["answerKey"].lstrip()))


def _mnli(row: dict) -> Prompt:
    hypothesis = row["hypothesis"].strip()
    hypothesis += "" if hypothesis.endswith(".") else "."
    return Prompt(f"{row['premise']}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
                  ["True", "Neither", "False"], int(row["label"]))


def _qnli(row: dict) -> Prompt:
    return Prompt(f"{row['question']}\n{row['sentence']}\nQuestion: Does this response answer the question?\nAnswer:",
                  ["yes", "no"], int(row["label"]))


def _rte(row: dict) -> Prompt:
    return Prompt(f"{row['premise']}\nQuestion: {row['hypothesis']} True or False?\nAnswer:",
                  ["True", "False"], int(row["label"]))


def _cb(row: dict) -> Prompt:
    return Prompt(f"{row['premise']}\nQuestion: {row['hypothesis']}. True, False, or Neither?\nAnswer:",
                  ["True", "False", "Neither"], int(row["label"]))


def _anli(row: dict) -> Prompt:
    return Prompt(f"{row['premise']}\nQuestion: {row['hypothesis']} True, False, or Neither?\nAnswer:",
                  ["True", "Neither", "False"], int(row["label"]))


def _wic(row: dict) -> Prompt:
    word = row["sentence1"][row["start1"]:row["end1"]]
    return Prompt(f"Sentence 1: {row['sentence1']}\nSentence 2: {row['sentence2']}\nQuestion: Is the word "
                  f"'{word}' used in the same way in the two sentences above?\nAnswer:", ["no", "yes"],
                  int(row["label"]))


def _detokenize(text: str) -> str:
    # lm_eval.utils.general_detokenize
    text = text.replace(" n't", "n't").replace(" )", ")").replace("( ", "(").replace('" ', '"').replace(' "', '"')
    return re.sub(r" (['.,])", r"\1", text)


def _wsc(row: dict) -> Prompt:
    # Span indices are word positions (lm-eval super_glue/wsc/preprocess_wsc.py).
    text, pronoun = row["text"], row["span2_text"]
    pre = " ".join(text.split()[: row["span2_index"]])
    post = text[len(pre) + len(pronoun) + 1:]
    passage = _detokenize(pre + f" *{pronoun}*" + post)
    return Prompt(f"Passage: {passage}\nQuestion: In the passage above, does the pronoun \"*{pronoun}*\" refer to "
                  f"\"*{row['span1_text']}*\"?\nAnswer:", ["no", "yes"], int(row["label"]))


def _multirc(row: dict) -> Prompt:
    answer = row["answer"]
    choices = [f"{answer}\nIs the answer correct? yes", f"{answer}\nIs the answer correct? no"]
    return Prompt(f"{row['paragraph']}\nQuestion: {row['question']}\nAnswer:", choices, 0 if row["label"] else 1)


def _mrpc(row: dict) -> Prompt:
    return Prompt(f"Sentence 1: {row['sentence1']}\nSentence 2: {row['sentence2']}\nQuestion: Do both sentences "
                  "mean the same thing?\nAnswer:", ["no", "yes"], int(row["label"]))


def _sst2(row: dict) -> Prompt:
    return Prompt(f"{row['sentence']}\nQuestion: Is this sentence positive or negative?\nAnswer:",
                  ["negative", "positive"], int(row["label"]))


def _qqp(row: dict) -> Prompt:
    return Prompt(f"Question 1: {row['question1']}\nQuestion 2: {row['question2']}\nQuestion: Do both questions "
                  "ask the same thing?\nAnswer:", ["no", "yes"], int(row["label"]))


_UPPER_PRONOUNS = ["A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their"]


def _wsc273_option(text: str, row: dict, option: str) -> str:
    # lm-eval wsc273/utils.py: possessives get 's; a capitalised first word is lowered mid-sentence.
    if row["pronoun"].lower() in ["my", "his", "her", "our", "their"]:
        option += "'s"
    first = option.split()[0]
    if text[row["pronoun_loc"] - 2] != "." and first in _UPPER_PRONOUNS:
        return option.replace(first, first.lower())
    return option


def _wsc273(row: dict) -> Prompt:
    # lm-eval collapses double spaces but keeps pronoun_loc as it was; we copy that.
    text = row["text"].replace("  ", " ")
    prefix = text[: row["pronoun_loc"]]
    continuation = text[row["pronoun_loc"] + len(row["pronoun"]):]
    contexts = [prefix + _wsc273_option(text, row, option) for option in row["options"]]
    return Prompt(prefix, [continuation] * len(contexts), int(row["label"]), contexts)


# --- the registry ---------------------------------------------------------------------------------------


def _entry(name: str, category: str, hub: tuple[str, str | None, str], mirror: str | None,
           adapter: Callable[[dict], Prompt], fields: str, score_rule: str = "acc",
           lm_eval_task: str | None = None) -> Benchmark:
    hub_id, config, split = hub
    source = HubSource(hub_id, config, split, f"benchmarks/{mirror}/{split}.jsonl" if mirror else None)
    return Benchmark(name, category, source, adapter, tuple(fields.split()), score_rule, lm_eval_task or name)


_SUPER_GLUE = "aps/super_glue"
_GLUE = "nyu-mll/glue"

_ENTRIES = [
    # commonsense
    _entry("hellaswag", "commonsense", ("Rowan/hellaswag", None, "validation"), "hellaswag", _hellaswag,
           "activity_label ctx_a ctx_b endings label", "acc_norm"),
    _entry("piqa", "commonsense", ("baber/piqa", None, "validation"), "piqa", _piqa, "goal sol1 sol2 label",
           "acc_norm"),
    _entry("copa", "commonsense", (_SUPER_GLUE, "copa", "validation"), "copa", _copa,
           "premise choice1 choice2 question label"),
    _entry("winogrande", "commonsense", ("allenai/winogrande", "winogrande_xl", "validation"), "winogrande",
           _winogrande, "sentence option1 option2 answer"),
    _entry("social_iqa", "commonsense", ("allenai/social_i_qa", None, "validation"), "social_i_qa", _social_iqa,
           "context question answerA answerB answerC label"),
    _entry("commonsense_qa", "commonsense", ("tau/commonsense_qa", None, "validation"), "commonsense_qa",
           _commonsense_qa, "question choices answerKey"),
    _entry("boolq", "commonsense", (_SUPER_GLUE, "boolq", "validation"), "boolq", _boolq, "passage question label"),
    # science
    _entry("arc_easy", "science", ("allenai/ai2_arc", "ARC-Easy", "test"), "arc_easy", _arc,
           "question choices answerKey", "acc_norm"),
    _entry("arc_challenge", "science", ("allenai/ai2_arc", "ARC-Challenge", "test"), "arc_challenge", _arc,
           "question choices answerKey", "acc_norm"),
    _entry("sciq", "science", ("allenai/sciq", None, "test"), "sciq", _sciq,
           "support question distractor1 distractor2 distractor3 correct_answer", "acc_norm"),
    _entry("openbookqa", "science", ("allenai/openbookqa", "main", "test"), "openbookqa", _openbookqa,
           "question_stem choices answerKey", "acc_norm"),
    # nli
    _entry("mnli", "nli", (_GLUE, "mnli", "validation_matched"), "mnli", _mnli, "premise hypothesis label"),
    _entry("qnli", "nli", (_GLUE, "qnli", "validation"), "qnli", _qnli, "question sentence label"),
    _entry("rte", "nli", (_SUPER_GLUE, "rte", "validation"), "rte", _rte, "premise hypothesis label",
           lm_eval_task="sglue_rte"),
    _entry("cb", "nli", (_SUPER_GLUE, "cb", "validation"), "cb", _cb, "premise hypothesis label"),
    # semantic
    _entry("wic", "semantic", (_SUPER_GLUE, "wic", "validation"), "wic", _wic,
           "sentence1 sentence2 start1 end1 label"),
    _entry("wsc", "semantic", (_SUPER_GLUE, "wsc.fixed", "validation"), "wsc", _wsc,
           "text span1_text span2_index span2_text label"),
    _entry("multirc", "semantic", (_SUPER_GLUE, "multirc", "validation"), "multirc", _multirc,
           "paragraph question answer label"),
    _entry("mrpc", "semantic", (_GLUE, "mrpc", "validation"), "mrpc", _mrpc, "sentence1 sentence2 label"),
    _entry("sst2", "semantic", (_GLUE, "sst2", "validation"), "sst2", _sst2, "sentence label"),
    # extras, kept available outside the study
    *[_entry(f"anli_r{r}", "nli", ("facebook/anli", None, f"test_r{r}"), "anli", _anli, "premise hypothesis label")
      for r in (1, 2, 3)],
    _entry("wsc273", "semantic", ("lighteval/winograd_wsc", "wsc273", "test"), "wsc273", _wsc273,
           "text pronoun pronoun_loc options label"),
    _entry("qqp", "semantic", (_GLUE, "qqp", "validation"), None, _qqp, "question1 question2 label"),
]

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _ENTRIES}
STUDY_BENCHMARKS: list[str] = [
    "hellaswag", "piqa", "copa", "winogrande", "social_iqa", "commonsense_qa", "boolq",
    "arc_easy", "arc_challenge", "sciq", "openbookqa",
    "mnli", "qnli", "rte", "cb",
    "wic", "wsc", "multirc", "mrpc", "sst2",
]
CATEGORY_ORDER = ("commonsense", "science", "nli", "semantic")  # the paper's order
CATEGORIES: dict[str, list[str]] = {
    category: [name for name in STUDY_BENCHMARKS if BENCHMARKS[name].category == category]
    for category in CATEGORY_ORDER
}


def get(name: str) -> Benchmark:
    """The registry entry of `name`, or an error listing the known names."""
    if name not in BENCHMARKS:
        raise UnknownName(f"unknown benchmark {name!r}; known benchmarks: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def subsample(n_rows: int, n: int | None, seed: int = 0) -> list[int]:
    """Row indices of a fixed-seed subsample of n rows, in file order (all rows when n is None or >= n_rows).

    The sample of n is the first n of one seeded permutation, so a smaller sample is part of a larger one.
    """
    if n is None or n >= n_rows:
        return list(range(n_rows))
    if n < 0:
        raise BadValue(f"items per benchmark = {n}; give a positive number or None for all items")
    return sorted(np.random.default_rng(seed).permutation(n_rows)[:n].tolist())


def load_items(name: str, n: int | None = None, seed: int = 0) -> list[Item]:
    """The items of benchmark `name`: all rows, or a fixed-seed subsample of n, from the mirror or the hub."""
    bench = get(name)
    if bench.source.mirror_path is None and paths.hub_offline():
        raise MissingFile(f"{name} has no copy in the data mirror and the hub is offline; unset "
                          f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE to load {bench.source.hub_id} from the hub, "
                          "or leave it out of eval.benchmarks")
    rows = load_rows(bench.source)
    where = _where(bench)
    missing = [f for f in bench.fields if f not in rows.column_names]
    if missing:
        raise BadValue(
            f"{where} lacks the field {missing[0]!r} (has {rows.column_names}; {bench.name} needs {list(bench.fields)}); "
            f"rewrite it in the hub schema of {bench.source.hub_id} (see benchmarks/SOURCES.md in the mirror) "
            "or load from the hub (unset HF_HUB_OFFLINE and $MAGIC_DATA)"
        )
    indices = subsample(len(rows), n, seed)
    items = []
    for index, row in zip(indices, rows.select(indices), strict=True):
        try:
            prompt = bench.adapter(row)
        except (KeyError, ValueError, IndexError, TypeError) as err:
            raise BadValue(f"{where}, row {index}: cannot build a {name} prompt ({type(err).__name__}: {err}); "
                           f"check that row against the hub schema of {bench.source.hub_id}") from err
        items.append(Item(name, str(index), prompt.context, prompt.continuations, prompt.gold, prompt.contexts))
    return items


def _where(bench: Benchmark) -> str:
    mirror = paths.find_mirror()
    if mirror is not None and bench.source.mirror_path is not None:
        return str(Path(mirror) / bench.source.mirror_path)
    return f"hub dataset {bench.source.hub_id} ({bench.source.hub_config or 'default'}, {bench.source.split})"


# --- what a study scores ------------------------------------------------------------------------------


def scored_benchmarks(ev: EvalConfig) -> list[str]:
    """The benchmarks an evaluation config scores (default: the study's 20); unknown names are refused."""
    for name in ev.benchmarks or []:
        if name not in BENCHMARKS:
            raise ConfigError(f"unknown eval.benchmarks {name!r}; allowed: {sorted(BENCHMARKS)}")
    return list(ev.benchmarks or STUDY_BENCHMARKS)


def scored_items(ev: EvalConfig) -> list[Item]:
    """The items a study scores: `ev.items_per_benchmark` of each scored benchmark (all when None), drawn with
    the fixed seed 0, so every checkpoint, seed and stage is scored on the very same questions."""
    return [item for name in scored_benchmarks(ev) for item in load_items(name, ev.items_per_benchmark, seed=0)]


def write_items(path: Path, items: Sequence[Item]) -> None:
    """Keep items as jsonl, one `Item` a line (written atomically)."""
    io.write_text(path, "".join(json.dumps(dataclasses.asdict(item)) + "\n" for item in items))


def read_items(path: Path) -> list[Item]:
    """The items `write_items` kept."""
    return [Item(**json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def benchmark_order(frame, categories: Sequence[str] = CATEGORY_ORDER, *, benchmark: str = "benchmark",
                    category: str = "category") -> list[str]:
    """The benchmarks of a table grouped by category (`categories` first, in that order, then any others as
    they appear), in order of first appearance within a category."""
    pairs = frame[[benchmark, category]].drop_duplicates(benchmark)
    present = list(dict.fromkeys(pairs[category]))
    order = [c for c in categories if c in present] + [c for c in present if c not in categories]
    rank = {c: i for i, c in enumerate(order)}
    return pairs.sort_values(category, key=lambda column: column.map(rank), kind="stable")[benchmark].tolist()
