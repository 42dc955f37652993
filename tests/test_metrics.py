"""Metrics from per-choice log-likelihoods, against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from magiclib import metrics

LN3 = math.log(3)


def _items(rows, **extra):
    """rows: (benchmark, item, [logliks], [n_chars], gold)."""
    records = [
        {**extra, "benchmark": bench, "item": item, "choice": c, "loglik": ll, "n_tokens": 1, "n_chars": nc, "gold": gold}
        for bench, item, lls, ncs, gold in rows for c, (ll, nc) in enumerate(zip(lls, ncs, strict=True))
    ]
    return pd.DataFrame.from_records(records)


# copa (primary acc): item 0 has p = [1/4, 3/4] and is right; item 1 is a tie, goes to choice 0, and is wrong.
# arc_easy (primary acc_norm): logliks [-10, -12] over [5, 12] characters: acc picks 0, acc_norm picks 1 = gold.
HAND = _items([
    ("copa", "0", [0.0, LN3], [4, 4], 1),
    ("copa", "1", [-1.0, -1.0], [3, 9], 1),
    ("arc_easy", "7", [-10.0, -12.0], [5, 12], 1),
])


def test_item_table_by_hand():
    table = metrics.item_table(HAND).set_index(["benchmark", "item"])
    assert table.loc[("copa", "0"), ["pred", "correct"]].tolist() == [1, True]
    assert table.loc[("copa", "0"), "confidence"] == pytest.approx(0.75)
    assert table.loc[("copa", "0"), "gold_prob"] == pytest.approx(0.75)
    assert table.loc[("copa", "1"), ["pred", "correct"]].tolist() == [0, False]  # tie: first index
    assert table.loc[("copa", "1"), "gold_prob"] == pytest.approx(0.5)
    e = math.e
    assert table.loc[("arc_easy", "7"), ["pred", "correct"]].tolist() == [1, True]
    assert table.loc[("arc_easy", "7"), "confidence"] == pytest.approx(e / (1 + e))  # softmax of [-2, -1]



def test_continuous_metrics_by_hand():
    # three choices, gold 1: logliks [-6, -4, -9] over [3, 4, 3] characters and [2, 4, 1] tokens,
    # so per character [-2, -1, -3] and per token gold -1
    items = pd.DataFrame({"benchmark": "hellaswag", "item": "0", "choice": [0, 1, 2], "loglik": [-6.0, -4.0, -9.0],
                          "n_tokens": [2, 4, 1], "n_chars": [3, 4, 3], "gold": 1})
    row = metrics.item_table(items).iloc[0]
    assert row["gold_ll_char"] == pytest.approx(-1.0)
    assert row["gold_ll_token"] == pytest.approx(-1.0)
    assert row["margin_char"] == pytest.approx(1.0)  # -1 - max(-2, -3)
    e = math.e
    assert row["gold_prob_char"] == pytest.approx(e**-1 / (e**-1 + e**-2 + e**-3))
    scores = metrics.score_table(pd.concat([items, items.assign(item="1", gold=0)]))
    # item 1: gold 0 at -2 per character, best wrong -1: margin -1; the mean over both items is 0
    assert scores["margin_char"].iloc[0] == pytest.approx(0.0)
    assert scores["margin_char_se"].iloc[0] == pytest.approx(1.0)  # sd([1, -1]) / sqrt(2)
    assert scores["gold_ll_token"].iloc[0] == pytest.approx((-1.0 - 3.0) / 2)

def test_score_table_by_hand():
    scores = metrics.score_table(HAND).set_index("benchmark")
    copa = scores.loc["copa"]
    assert (copa["category"], copa["n"], copa["score_rule"]) == ("commonsense", 2, "acc")
    assert copa["acc"] == copa["accuracy"] == 0.5
    assert copa["acc_se"] == pytest.approx(0.5)  # sd([1, 0], ddof=1) / sqrt(2)
    assert copa["confidence"] == pytest.approx(0.625)
    assert copa["gold_prob"] == pytest.approx(0.625)
    assert copa["brier"] == pytest.approx((0.125 + 0.5) / 2)  # 2 * 0.25^2 and 2 * 0.5^2
    # one item per equal-width bin: ECE = mean |correct - confidence| = (0.25 + 0.5) / 2
    assert copa["ece_15"] == pytest.approx(0.375)
    assert copa["ece"] == pytest.approx(0.375)
    arc = scores.loc["arc_easy"]
    assert (arc["score_rule"], arc["acc"], arc["acc_norm"], arc["accuracy"]) == ("acc_norm", 0.0, 1.0, 1.0)
    assert np.isnan(arc["acc_se"])  # one item: no standard error


def test_ece_binnings_by_hand():
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 0, 1, 0])
    # equal mass, 2 bins: {0.6, 0.7} gap |0.5 - 0.65|, {0.8, 0.9} gap |0.5 - 0.85|
    assert metrics.ece_equal_mass(confidence, correct, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.35)
    # equal width, 2 bins: everything in (0.5, 1]
    assert metrics.ece_equal_width(confidence, correct, n_bins=2) == pytest.approx(abs(0.5 - 0.75))
    # 15 bins of width 1/15: each item alone
    assert metrics.ece_equal_width(confidence, correct) == pytest.approx((0.1 + 0.8 + 0.3 + 0.6) / 4)
    assert metrics.ece_equal_width(np.array([1.0, 1 / 15]), np.array([1, 1]), n_bins=15) == pytest.approx(
        (0 + (1 - 1 / 15)) / 2)


# piqa, two runs: run a gets both items right, run b both wrong.
HAND_ROWS = [("piqa", "0", [-1.0, -2.0], [4, 4], 0), ("piqa", "1", [-3.0, -2.0], [4, 4], 1)]
HAND_ROWS_SHIFTED = [("piqa", "0", [-3.0, -2.0], [4, 4], 0), ("piqa", "1", [-1.0, -2.0], [4, 4], 1)]


def test_extra_columns_are_grouping_keys():
    both = pd.concat([_items(HAND_ROWS, run="a", stage="PT"), _items(HAND_ROWS_SHIFTED, run="b", stage="PT")])
    scores = metrics.score_table(both)
    assert list(scores.columns[:4]) == ["run", "stage", "benchmark", "category"]
    assert len(scores) == 2
    assert scores.set_index("run").loc["a", "acc"] == 1.0
    assert scores.set_index("run").loc["b", "acc"] == 0.0
    items = metrics.item_table(both)
    assert list(items.columns[:4]) == ["run", "stage", "benchmark", "item"] and len(items) == 4


def test_choice_order_in_the_table_does_not_matter():
    shuffled = HAND.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(metrics.score_table(shuffled).sort_values("benchmark").reset_index(drop=True),
                                  metrics.score_table(HAND).sort_values("benchmark").reset_index(drop=True))


def test_bad_tables_say_what_is_wrong():
    with pytest.raises(ValueError, match="lacks column"):
        metrics.score_table(HAND.drop(columns=["n_chars"]))
    with pytest.raises(ValueError, match="unknown benchmark"):
        metrics.score_table(HAND.assign(benchmark="nope"))


@pytest.mark.skipif(__import__("magiclib").paths.find_mirror() is None, reason="needs the local data mirror")
def test_lm_eval_divisor_divides_partial_scoring_choices_by_their_context_length():
    from magiclib.benchmarks import load_items

    wino = load_items("winogrande")[:6]
    rng = np.random.default_rng(0)
    rows = [{"benchmark": "winogrande", "item": item.item_id, "choice": c, "loglik": float(rng.normal(-20, 3)),
             "n_tokens": 5, "n_chars": len(item.continuations[c]), "gold": item.gold}
            for item in wino for c in range(2)]
    rows += [{"benchmark": "copa", "item": "0", "choice": c, "loglik": ll, "n_tokens": 2, "n_chars": n, "gold": 0}
             for c, (ll, n) in enumerate([(-3.0, 5), (-4.0, 10)])]
    items = pd.DataFrame(rows)
    ours = metrics.item_table(items)
    theirs = metrics._per_item(items, "lm_eval")
    wino_ll = items[items["benchmark"] == "winogrande"]["loglik"].to_numpy().reshape(-1, 2)
    lengths = np.array([[len(ctx) for ctx in item.contexts] for item in wino])
    assert theirs["pred_norm"].tolist()[:6] == np.argmax(wino_ll / lengths, axis=1).tolist()
    assert metrics._per_item(items)["pred_norm"].tolist()[:6] == np.argmax(wino_ll, axis=1).tolist()
    assert theirs["pred_norm"].iloc[6] == 1  # copa keeps the continuation's characters
    # the primary rule of winogrande is acc, so what the study reports does not move
    assert metrics.item_table(items, "lm_eval")["pred"].tolist() == ours["pred"].tolist()
    with pytest.raises(ValueError, match="acc_norm_divisor"):
        metrics.score_table(items, acc_norm_divisor="tokens")
