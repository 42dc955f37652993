"""Scores from the saved per-choice log-likelihoods: accuracy, confidence and calibration per benchmark.

Everything is recomputed from the tidy `items` table (one row per item and choice), so a metric can change
without rescoring a checkpoint. Per item, p is the softmax over the choice scores of the benchmark's primary
rule (raw log-likelihood for acc, log-likelihood per character for acc_norm, as lm-evaluation-harness), so
the prediction, the confidence (max p) and the gold probability (p[gold]) all come from the same scores.
Ties go to the first choice, as numpy's (and lm-eval's) argmax.

Columns of `items` other than the per-choice ones (run, mixture, scale, stage...) are grouping keys, so one
call scores many runs at once. No torch here: the analysis side imports this module.

acc_norm's divisor. acc_norm divides each choice's log-likelihood by the characters of its continuation
(`n_chars`), which is lm-eval's acc_norm on every task but two. The partial-scoring tasks, winogrande and
wsc273, put the choice into the context and score the same continuation for every choice; lm-eval divides
there by the length of each choice's context string (its doc_to_choice), so its acc_norm mixes a per-choice
length into a score of one shared text. Ours divides by the continuation's characters, equal across the
choices, so on these two acc_norm equals acc (and both use acc as their primary rule, where the divisors
do not matter). `acc_norm_divisor="lm_eval"` (ACC_NORM_DIVISORS) reproduces lm-eval's numbers exactly: it
reads the per-choice contexts of those two benchmarks from their files, by item id.

Continuous metrics (CONTINUOUS_METRICS). Accuracy flips only when the best choice changes, so at small scale
most mixtures tie on it; these move with every change of the log-likelihoods (DataDecide, Magnusson et al.
2025, found such metrics rank data recipes far more reliably at small scale). Per item, with l_j the
log-likelihood of choice j's continuation, c_j its characters, t_j its tokens and g the gold choice:

    gold_ll_char   = l_g / c_g                                  (nats per character of the gold answer)
    gold_ll_token  = l_g / t_g                                  (nats per token of the gold answer)
    margin_char    = l_g / c_g - max_{j != g} l_j / c_j         (> 0 exactly when acc_norm is right)
    gold_prob_char = exp(l_g / c_g) / sum_j exp(l_j / c_j)      (softmax over per-character scores)

The per-(run, benchmark) value is the mean over items, with its standard error, like accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .benchmarks import BENCHMARKS
from .errors import BadValue

CHOICE_COLUMNS = ["item", "choice", "loglik", "n_tokens", "n_chars", "gold"]
CONTINUOUS_METRICS = ("gold_ll_char", "gold_ll_token", "margin_char", "gold_prob_char")
ACC_NORM_DIVISORS = ("continuation", "lm_eval")  # see the module docstring
PARTIAL_SCORING = ("winogrande", "wsc273")  # the benchmarks whose items carry per-choice contexts
ECE_EQUAL_MASS_BINS = 10
ECE_EQUAL_WIDTH_BINS = 15


def group_keys(items: pd.DataFrame) -> list[str]:
    """The columns that identify a (run, benchmark): every column that is not per item or per choice."""
    return [c for c in items.columns if c not in CHOICE_COLUMNS]


def _check(items: pd.DataFrame) -> None:
    missing = [c for c in ["benchmark", *CHOICE_COLUMNS] if c not in items.columns]
    if missing:
        raise BadValue(f"the items table lacks column(s) {missing}; pass the table scorer.score_items returns "
                       f"(columns benchmark, {', '.join(CHOICE_COLUMNS)})")
    unknown = sorted(set(items["benchmark"]) - set(BENCHMARKS))
    if unknown:
        raise BadValue(f"unknown benchmark(s) {unknown} in the items table; known: {sorted(BENCHMARKS)}")
    if (items["n_chars"] <= 0).any():
        raise BadValue("some choices have n_chars <= 0, so acc_norm (log-likelihood per character) is undefined; "
                       "rescore them: every choice needs a non-empty text")


def _acc_norm_chars(df: pd.DataFrame, divisor: str) -> np.ndarray:
    """Per choice, what acc_norm divides by: continuation characters, or lm-eval's per-choice context length
    on the partial-scoring benchmarks (whose items carry per-choice contexts)."""
    if divisor not in ACC_NORM_DIVISORS:
        raise BadValue(f"acc_norm_divisor = {divisor!r}; choose one of {ACC_NORM_DIVISORS}")
    chars = df["n_chars"].to_numpy(float).copy()
    if divisor == "lm_eval":
        from .benchmarks import load_items

        for name in set(df["benchmark"]) & set(PARTIAL_SCORING):
            rows = np.flatnonzero(df["benchmark"].to_numpy() == name)
            contexts = {item.item_id: item.contexts for item in load_items(name)}
            chars[rows] = [len(contexts[str(i)][c]) for i, c in zip(df["item"].to_numpy()[rows],
                                                                     df["choice"].to_numpy()[rows], strict=True)]
    return chars


def _per_item(items: pd.DataFrame, acc_norm_divisor: str = "continuation") -> pd.DataFrame:
    """One row per item, in order of first appearance: predictions under both rules, and p-statistics
    (confidence, gold probability, Brier score) under the primary rule."""
    _check(items)
    keys = [*group_keys(items), "item"]
    item_of = items.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    order = np.lexsort((items["choice"].to_numpy(), item_of))
    df, item_of = items.iloc[order].reset_index(drop=True), item_of[order]
    starts = np.flatnonzero(np.r_[True, item_of[1:] != item_of[:-1]])
    choice, gold = df["choice"].to_numpy(), df["gold"].to_numpy()
    loglik = df["loglik"].to_numpy(float)
    norm = loglik / df["n_chars"].to_numpy(float)
    is_norm = (df["benchmark"].map(lambda name: BENCHMARKS[name].score_rule) == "acc_norm").to_numpy()
    primary = np.where(is_norm, norm, loglik)

    def first_argmax(score: np.ndarray) -> np.ndarray:
        # the smallest choice index reaching the item's maximum: numpy's argmax tie rule
        at_max = score == np.maximum.reduceat(score, starts)[item_of]
        return np.minimum.reduceat(np.where(at_max, choice, np.iinfo(np.int64).max), starts)

    p = np.exp(primary - np.maximum.reduceat(primary, starts)[item_of])
    p /= np.add.reduceat(p, starts)[item_of]
    is_gold = choice == gold
    out = df.loc[starts, [*keys, "gold"]].reset_index(drop=True)
    # only the partial-scoring benchmarks' divisors differ, and their primary rule is acc: p stays the same
    out["pred_acc"], out["pred_norm"] = first_argmax(loglik), first_argmax(loglik / _acc_norm_chars(df, acc_norm_divisor))
    out["pred"] = np.where(is_norm[starts], out["pred_norm"], out["pred_acc"])
    out["confidence"] = np.maximum.reduceat(p, starts)
    out["gold_prob"] = np.add.reduceat(np.where(is_gold, p, 0.0), starts)
    out["brier"] = np.add.reduceat((p - is_gold) ** 2, starts)  # multiclass: sum_k (p_k - [k == gold])^2
    # continuous metrics (module docstring): gold's per-character and per-token log-likelihood, its margin
    # over the best wrong choice per character, and its softmax probability over per-character scores
    gold_norm = np.add.reduceat(np.where(is_gold, norm, 0.0), starts)
    out["gold_ll_char"] = gold_norm
    out["gold_ll_token"] = np.add.reduceat(np.where(is_gold, loglik / df["n_tokens"].to_numpy(float), 0.0), starts)
    out["margin_char"] = gold_norm - np.maximum.reduceat(np.where(is_gold, -np.inf, norm), starts)
    p_char = np.exp(norm - np.maximum.reduceat(norm, starts)[item_of])
    out["gold_prob_char"] = np.add.reduceat(np.where(is_gold, p_char, 0.0), starts) / np.add.reduceat(p_char, starts)
    return out


def item_table(items: pd.DataFrame, acc_norm_divisor: str = "continuation") -> pd.DataFrame:
    """Per item under the primary rule: prediction, correctness, confidence, gold probability."""
    per_item = _per_item(items, acc_norm_divisor)
    per_item["correct"] = per_item["pred"] == per_item["gold"]
    runs = [k for k in group_keys(items) if k != "benchmark"]
    return per_item[[*runs, "benchmark", "item", "gold", "pred", "correct", "confidence", "gold_prob",
                     *CONTINUOUS_METRICS]]


def ece_equal_mass(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_EQUAL_MASS_BINS) -> float:
    """Expected calibration error over bins holding equal numbers of items (sorted by confidence)."""
    order = np.argsort(confidence, kind="stable")
    return _ece(np.asarray(confidence, float), np.asarray(correct, float), np.array_split(order, n_bins))


def ece_equal_width(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_EQUAL_WIDTH_BINS) -> float:
    """Expected calibration error over equal-width confidence bins (i/n, (i+1)/n], as Guo et al. 2017."""
    confidence = np.asarray(confidence, float)
    bin_of = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    return _ece(confidence, np.asarray(correct, float), [np.flatnonzero(bin_of == b) for b in range(n_bins)])


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: list[np.ndarray]) -> float:
    gaps = [len(b) * abs(correct[b].mean() - confidence[b].mean()) for b in bins if len(b)]
    return float(sum(gaps) / len(confidence))


def _mean_se(values: pd.Series) -> tuple[float, float]:
    values = values.astype(float)
    return float(values.mean()), float(stats.sem(values)) if len(values) > 1 else float("nan")


def score_table(items: pd.DataFrame, acc_norm_divisor: str = "continuation") -> pd.DataFrame:
    """One row per (run keys..., benchmark): accuracy under both rules, confidence and calibration
    (`acc_norm_divisor`: see the module docstring)."""
    per_item = _per_item(items, acc_norm_divisor)
    per_item["correct_acc"] = per_item["pred_acc"] == per_item["gold"]
    per_item["correct_norm"] = per_item["pred_norm"] == per_item["gold"]
    per_item["correct"] = per_item["pred"] == per_item["gold"]
    keys = group_keys(items)
    records = []
    for key, g in per_item.groupby(keys, sort=False, dropna=False):
        bench = BENCHMARKS[g["benchmark"].iloc[0]]
        record = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        record.update(category=bench.category, n=len(g), score_rule=bench.score_rule)
        for name, column in (("acc", "correct_acc"), ("acc_norm", "correct_norm"), ("accuracy", "correct"),
                             ("confidence", "confidence"), ("gold_prob", "gold_prob"),
                             *((name, name) for name in CONTINUOUS_METRICS)):
            record[name], record[f"{name}_se"] = _mean_se(g[column])
        record["ece"] = ece_equal_mass(g["confidence"].to_numpy(), g["correct"].to_numpy())
        record["ece_15"] = ece_equal_width(g["confidence"].to_numpy(), g["correct"].to_numpy())
        record["brier"], record["brier_se"] = _mean_se(g["brier"])
        records.append(record)
    columns = [*[k for k in keys if k != "benchmark"], "benchmark", "category", "n", "score_rule", "acc", "acc_se",
               "acc_norm", "acc_norm_se", "accuracy", "accuracy_se", "confidence", "confidence_se", "gold_prob",
               "gold_prob_se", *(f"{m}{suffix}" for m in CONTINUOUS_METRICS for suffix in ("", "_se")),
               "ece", "ece_15", "brier", "brier_se"]
    return pd.DataFrame.from_records(records, columns=columns)
