"""Tests for magiclib.report: numbers as text, the paper's values beside ours, shared tables, the answers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from magiclib import io, report
from magiclib.analysis import make_scores, paper_numbers
from magiclib.config import load_config
from magiclib.model import count_parameters


def test_human_counts():
    assert [report.human(n) for n in (512, 37_024, 1_574_016, 241_054_464, 1.147e9)] == [
        "512", "37K", "1.57M", "241M", "1.15B"]


def test_counted_nouns():
    assert (report.counted(1, "seed"), report.counted(2, "scale"),
            report.counted(3, "category", "categories")) == ("1 seed", "2 scales", "3 categories")


def test_p_values_in_cells_and_sentences_say_when_there_is_no_p():
    assert [report.p_text(p) for p in (0.0421, 0.0004, np.nan, None)] == ["0.042", "<0.001", "-", "-"]
    assert [report.p_is(p) for p in (0.0421, 0.0004, np.nan)] == ["p = 0.042", "p < 0.001", "p not defined"]


def test_intervals_as_text_keep_the_rows_index():
    rows = pd.DataFrame({"ci_low": [-0.123, np.nan], "ci_high": [0.8, np.nan], "lo": [0.1, 0.2],
                         "hi": [0.3, 0.4]}, index=["a", "b"])
    assert report.interval(rows).to_dict() == {"a": "[-0.12, 0.80]", "b": "-"}
    assert report.interval(rows, "lo", "hi").to_dict() == {"a": "[0.10, 0.30]", "b": "[0.20, 0.40]"}


@pytest.mark.parametrize("n", [5, 9, 30])
def test_critical_r_is_where_pearsons_p_crosses_alpha(n):
    r = report.critical_r(n)
    assert math.isclose(r, report.critical_r(n, 0.05))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    # a y whose correlation with x is exactly r (+/- a hair): p sits on either side of .05
    noise = rng.standard_normal(n)
    noise -= np.polyval(np.polyfit(x, noise, 1), x)
    for target, side in ((r + 1e-6, -1), (r - 1e-6, 1)):
        y = target * (x - x.mean()) / x.std() + math.sqrt(1 - target**2) * noise / noise.std()
        assert np.sign(stats.pearsonr(x, y).pvalue - 0.05) == side
    assert report.critical_r(9) == pytest.approx(0.666, abs=1e-3)  # the figure the design quotes


def test_paper_values_at_the_scale_of_the_same_rank():
    paper = paper_numbers()
    quote = report.PaperValues(paper, ["small", "large", "huge"])
    row = paper[(paper["quantity"] == "transfer_mean_r") & (paper["scale_rank"] == 0)].iloc[0]
    fields = {"metric": row["metric"], "category": row["category"]}
    expected = f"{row['value']:.2f} [{row['mark']}]"
    assert quote.value("transfer_mean_r", "small", **fields) == f"{expected} ({row['scale']})"
    assert quote.value("transfer_mean_r", "small", with_scale=False, **fields) == expected
    assert quote.value("transfer_mean_r", "huge", **fields) == ""
    assert quote.scale_of("small") == row["scale"] and quote.scale_of("huge") == ""
    assert quote.span("transfer_mean_r", "small", "huge", " to ", **fields) == f"{expected} ({row['scale']}) to -"
    assert quote.span("transfer_mean_r", "huge", "huge", " to ", **fields) == ""


def test_mixtures_and_scales_tables_come_from_the_config():
    cfg = load_config("mini")
    mixtures = report.mixtures_table(cfg)
    assert list(mixtures["mixture"]) == cfg.mixture_names
    assert (mixtures[["web", "code", "curated"]].sum(axis=1) - 1).abs().max() < 1e-9
    assert mixtures.set_index("mixture").loc["V2-P1", "code pools"] == "code_python, code_go"
    scales = report.scales_table(cfg).set_index("scale")
    small = cfg.scales["mini-s"]
    assert scales.loc["mini-s", "parameters"] == count_parameters(small.model)["total"]
    assert scales.loc["mini-s", "PT tokens"] == small.pretrain.max_steps * small.pretrain.batch_size * 256


def test_benchmarks_table_counts_what_the_results_scored_in_category_order():
    run = {"mixture": "V1-P0", "scale": "s", "stage": "PT", "seed": 0}
    rows = [{**run, "benchmark": b, "item": i, "choice": c}
            for b, items in (("rte", 3), ("copa", 10), ("arc_easy", 4)) for i in range(items) for c in range(2)]
    other_run = [{**row, "stage": "SFT"} for row in rows]
    table = report.benchmarks_table(pd.DataFrame(rows + other_run))
    assert list(table["benchmark"]) == ["copa", "arc_easy", "rte"]
    copa = table.iloc[0]
    assert (copa["category"], copa["items"], copa["items scored"], copa["choices"]) == ("commonsense", 100, 10, "2")
    # the range of answer choices is the split's, not only the scored items'
    assert table.set_index("benchmark").loc["arc_easy", "choices"] == "3-5"


def test_study_config_prefers_the_results_config(tmp_path):
    assert report.study_config(tmp_path, "smoke").name == "smoke"
    io.write_text(tmp_path / "config.yaml", "name: smoke-variant\nseeds: [3]\n")
    assert report.study_config(tmp_path, "smoke").seeds == [3]


# two benchmarks per category keep the permutation tests quick
FEW = {"piqa": "commonsense", "copa": "commonsense", "sciq": "science", "arc_easy": "science", "rte": "nli",
       "cb": "nli", "wic": "semantic", "sst2": "semantic"}


def test_answers_give_one_line_per_question_with_its_noise():
    table = report.answers(make_scores(benchmarks=FEW, seed=1), n_boot=100)
    assert list(table["rq"]) == ["RQ1", "RQ2", "RQ3", "RQ4"]
    assert table["verdict"].str.len().min() > 0 and table["noise"].str.contains("item noise").all()
    text = report.answers_markdown(table)
    assert text.count("\n") == 3 and "**[RQ1](rq1_persistence.ipynb)**" in text


def test_answers_call_a_perfect_transfer_persisting():
    scores = make_scores(benchmarks=FEW, seed=1)
    pt = scores[scores["stage"] == "PT"]
    same = pd.concat([pt, pt.assign(stage="SFT")], ignore_index=True)  # SFT ranks every mixture as PT did
    answers = report.answers(same, n_boot=100).set_index("rq")
    assert answers.loc["RQ1", "verdict"] == "rankings persist beyond noise"
    assert answers.loc["RQ2", "verdict"] == "some benchmarks are robust predictors"
