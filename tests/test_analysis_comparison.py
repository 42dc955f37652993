"""The paper's numbers beside ours (magiclib.analysis.comparison)."""

import numpy as np
import pandas as pd
import pytest

from magiclib.analysis import make_scores, paper_numbers
from magiclib.analysis.comparison import agreement_summary, compare_with_paper

BENCHMARKS = {"hellaswag": "commonsense", "piqa": "commonsense", "sciq": "science", "arc_easy": "science",
              "mnli": "nli", "rte": "nli", "wic": "semantic", "multirc": "semantic"}


def _paper(rows: list[dict]) -> pd.DataFrame:
    """A paper table in paper_numbers()'s schema, holding only `rows`."""
    base = dict.fromkeys(["metric", "stage", "category", "kind", "benchmark", "note"], "")
    return pd.DataFrame([base | {"mark": "S", "unit": "r", "scale_rank": 0, "scale": "240M"} | row for row in rows])


@pytest.mark.slow  # every protocol on a two-scale table: about 5 s
def test_every_paper_number_gets_a_row_and_unstated_details_become_readings():
    scores = make_scores(benchmarks=BENCHMARKS)
    table = compare_with_paper(scores, n_boot=99)
    assert set(table["number"]) == set(paper_numbers().index)
    r_align = table[table["quantity"] == "r_align"]
    assert set(r_align["reading"]) == {"across benchmarks", "across mixtures"}
    code = table[(table["quantity"] == "code_share_r") & (table["benchmark"] == "hellaswag")]
    assert sorted(code["reading"]) == ["at PT", "at PT", "at SFT", "at SFT"]  # two scales x two stages
    assert set(code["stage"]) == {"PT", "SFT"}
    # benchmarks this table lacks (boolq, ...) keep their row, without a value of ours
    boolq = table[table["benchmark"] == "boolq"]
    assert boolq["ours"].isna().all() and boolq["note"].str.contains("not in our results").all()


def test_agreement_is_judged_by_sign_and_interval():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    sft = scores["stage"] == "SFT"
    pt_confidence = scores.loc[~sft, "confidence"].to_numpy()
    scores.loc[sft, "confidence"] = 0.5 * pt_confidence + 0.2  # planted: confidence transfers perfectly
    paper = _paper([
        {"quantity": "transfer_mean_r", "metric": "confidence", "category": "all", "value": 1.0},
        {"quantity": "transfer_mean_r", "metric": "confidence", "category": "all", "value": -0.5},
        {"quantity": "transfer_mean_r", "metric": "confidence", "category": "all", "value": 0.5,
         "scale_rank": 1, "scale": "1B"},
    ])
    table = compare_with_paper(scores, paper, n_boot=99)
    assert table["ours"].iloc[:2].tolist() == pytest.approx([1.0, 1.0])
    assert table["same_sign"].iloc[:2].tolist() == [True, False]
    # A perfect r has no interval ([1, 1] would claim certainty): paper_in_ci is undefined, not True.
    assert table["paper_in_ci"].iloc[:2].isna().all() and not table["ci_reliable"].iloc[:2].any()
    assert np.isnan(table["ours"].iloc[2]) and "no matching scale" in table["note"].iloc[2]
    summary = agreement_summary(table).set_index("quantity")
    assert summary.loc["all", ["numbers", "computed", "same_sign", "with_ci", "paper_in_ci"]].tolist() == [
        3, 2, 1, 0, 0]


def test_paper_in_ci_uses_only_reliable_intervals():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    rng = np.random.default_rng(3)
    sft = scores["stage"] == "SFT"
    pt = scores.loc[~sft, "accuracy"].to_numpy()
    scores.loc[sft, "accuracy"] = pt + rng.normal(0, pt.std(), size=pt.size)  # strong, imperfect transfer
    wic, last = scores["benchmark"] == "wic", scores["mixture"] == scores["mixture"].max()
    scores.loc[wic & ~sft, "accuracy"] = 0.5
    scores.loc[wic & ~sft & last, "accuracy"] = 0.6  # 8 of 9 PT mixtures tied: an unreliable interval
    paper = _paper([
        {"quantity": "transfer_r", "metric": "accuracy", "benchmark": "hellaswag", "value": 0.5},
        {"quantity": "transfer_r", "metric": "accuracy", "benchmark": "wic", "value": 0.5},
    ])
    table = compare_with_paper(scores, paper, n_boot=199).set_index("benchmark")
    assert table.loc["hellaswag", "ci_reliable"] and table.loc["hellaswag", "paper_in_ci"] in (True, False)
    assert abs(table.loc["wic", "ours"]) < 1
    assert not table.loc["wic", "ci_reliable"] and np.isnan(table.loc["wic", "paper_in_ci"])


def test_unknown_quantities_are_named():
    paper = _paper([{"quantity": "perplexity", "value": 1.0}])
    with pytest.raises(ValueError, match="perplexity"):
        compare_with_paper(make_scores(benchmarks=BENCHMARKS), paper)


def test_an_undefined_correlation_says_so():
    scores = make_scores(scales={"only": 1}, benchmarks=BENCHMARKS)
    scores.loc[scores["benchmark"] == "wic", "accuracy"] = 0.5  # every mixture alike: no ranking to transfer
    paper = _paper([{"quantity": "transfer_r", "metric": "accuracy", "benchmark": "wic", "value": -0.07}])
    row = compare_with_paper(scores, paper, n_boot=99).iloc[0]
    assert np.isnan(row["ours"]) and "constant" in row["note"]
    assert np.isnan(row["same_sign"]) and np.isnan(row["paper_in_ci"])
