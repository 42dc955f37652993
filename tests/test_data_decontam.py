"""Decontamination finds a benchmark item planted in a training document."""

from magiclib.data.decontam import NgramIndex

ITEM = "A man is sitting on a roof. He starts pulling up roofing on a roof and throws it into the yard below"
BENCHMARKS = {"hellaswag": [ITEM], "piqa": ["How do I open a jar that is stuck? Run the lid under hot water."]}


def test_planted_item_is_caught_whatever_the_case_and_punctuation():
    index = NgramIndex.from_texts(BENCHMARKS, 13)
    planted = "Some forum post. " + ITEM.upper().replace(".", " --") + " Then it rained."
    clean = "A man is sitting on a roof and reading a book about gardens in the yard below the house."
    assert index.overlaps([clean, planted]) == [[], ["hellaswag"]]


def test_twelve_shared_words_are_not_contamination():
    index = NgramIndex.from_texts(BENCHMARKS, 13)
    twelve = " ".join(ITEM.split()[:12])
    assert index.overlaps([f"prefix words {twelve} other words"]) == [[]]


def test_ngram_shared_by_two_benchmarks_reports_both():
    index = NgramIndex.from_texts({"a": [ITEM], "b": [ITEM + " again"]}, 13)
    assert index.overlaps([ITEM]) == [["a", "b"]]
    assert index.benchmarks == ("a", "b")


def test_items_shorter_than_n_cannot_match():
    index = NgramIndex.from_texts({"short": ["too short to match"]}, 13)
    assert len(index.hashes) == 0
    assert index.overlaps(["too short to match", ""]) == [[], []]
