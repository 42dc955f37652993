"""The paper's reported numbers as a tidy table (magiclib.analysis.paper)."""

from magiclib.analysis import paper_numbers
from magiclib.analysis.tables import CATEGORIES


def test_reported_numbers_with_provenance():
    table = paper_numbers()
    assert list(table.columns) == [
        "quantity",
        "metric",
        "scale",
        "scale_rank",
        "stage",
        "category",
        "kind",
        "benchmark",
        "value",
        "unit",
        "mark",
        "provenance",
        "note",
    ]
    assert set(table["mark"]) == {"P", "S"} and table["provenance"].str.contains("PAPER.md").all()
    assert (table["scale_rank"] == table["scale"].map({"240M": 0, "1B": 1})).all()
    assert set(table["category"]) - {""} <= set(CATEGORIES) | {"all"}
    key = ["quantity", "metric", "scale", "stage", "category", "kind", "benchmark"]
    assert not table.duplicated(key).any()
    commonsense = table.set_index(key[:5]).loc[("transfer_mean_r", "confidence", "240M", "", "commonsense")]
    assert (commonsense["value"], commonsense["mark"]) == (0.87, "P")
    r_align = table[table["quantity"] == "r_align"]
    assert (
        len(r_align) == 16
        and r_align.set_index(["scale", "stage", "category"]).loc[("1B", "SFT", "nli"), "value"] == 0.39
    )
