"""The `magic data` table, from the summaries the data steps return."""

import pytest

from magiclib.data.report import data_table

POOLS_SUMMARY = {"where": "mirror", "docs": {}, "removed": {
    "V1": {"heuristic": 5, "exact_dedup": 1, "near_dedup": 2, "decontam": 3},
    "V2": {"heuristic": 5, "exact_dedup": 1, "near_dedup": 2, "edu": 40, "decontam": 1},
    "code_python": {"decontam": 0}, "code_go": {"decontam": 0}, "wikipedia": {"decontam": 7}}}


def _mixture(name, web, pools):
    return {"mixture": name, "seed": 0, "tokens": 100,
            "pools": {web: {"role": "web", "tokens": 60, "epochs": 0.5},
                      **{p: {"role": "code", "tokens": 20, "epochs": 1.5} for p in pools}}}


def test_one_row_per_mixture_with_its_web_sources_removals():
    summaries = [{"step": "pools", "summary": POOLS_SUMMARY}, {"step": "tokenizer", "summary": None},
                 {"step": "mixture V1-P0 s0", "summary": _mixture("V1-P0", "V1", ["code_python"])},
                 _mixture("V2-P0", "V2", ["code_python", "code_go"])]  # a bare summary works too
    table = data_table(summaries).set_index("mixture")
    assert list(table.index) == ["V1-P0", "V2-P0"]
    assert table.loc["V1-P0", "tokens_web"] == 60 and table.loc["V2-P0", "epochs_code_go"] == 1.5
    assert table.loc["V1-P0", "removed_edu"] == 0 and table.loc["V2-P0", "removed_edu"] == 40
    assert table.loc["V1-P0", "removed_decontam"] == 3 and table.loc["V2-P0", "removed_decontam"] == 1
    assert list(table.columns[:7]) == ["seed", "tokens", "tokens_web", "tokens_code_python", "tokens_code_go",
                                       "epochs_web", "epochs_code_python"]
    assert table.columns[-1] == "removed_decontam"


@pytest.mark.parametrize("summaries", [[], [{"step": "pools", "summary": POOLS_SUMMARY}]])
def test_no_mixtures_gives_an_empty_table(summaries):
    assert data_table(summaries).empty
