"""The RefinedWeb/Gopher-style heuristic rules on hand-made documents."""

from magiclib.data.filters import heuristic_reason

GOOD = (
    "The river runs through the middle of the old town, and most of the houses that line its banks were "
    "built by merchants in the eighteenth century. Visitors often walk along the water in the evening, when "
    "the light is soft and the streets are quiet. A small museum near the bridge tells the story of the "
    "trade that made the town rich, with maps, ledgers and letters from families who lived here for "
    "generations. In the spring a market fills the square with flowers, bread and cheese from the farms "
    "around the valley, and musicians play until late at night."
)


def test_ordinary_prose_passes():
    assert heuristic_reason(GOOD) is None


def test_short_document_fails_on_length():
    assert heuristic_reason("The cat sat on the mat with the dog.").startswith("length:")


def test_text_without_stop_words_fails():
    text = " ".join(["buy cheap watches online now discount prices free shipping worldwide"] * 6)
    assert heuristic_reason(text).startswith(("stop words:", "top 2-gram:", "repeated"))
    list_of_names = " ".join(f"Name{i} Surname{i} Street{i}" for i in range(30))
    assert heuristic_reason(list_of_names).startswith("stop words:")


def test_repeated_lines_fail():
    text = "\n".join(["Click here to subscribe to the newsletter and get the latest offers."] * 12)
    assert heuristic_reason(text).startswith(("repeated lines:", "top 2-gram:"))
    lines = GOOD.split(". ")
    assert heuristic_reason("\n".join(lines + lines + lines)).startswith("repeated lines:")


def test_symbol_heavy_text_fails():
    text = GOOD + " " + " ".join(["#tag"] * 40)
    assert heuristic_reason(text).startswith("symbols:")


def test_repeated_ngrams_fail():
    text = GOOD + " " + " ".join(["and the light is soft and the streets are quiet"] * 8)
    assert heuristic_reason(text).startswith(("top ", "repeated"))
