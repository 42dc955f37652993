"""Decontamination finds a benchmark item planted in a training document."""

import numpy as np

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


def test_word_hashes_split_like_text_words():
    from magiclib.data.decontam import word_hashes
    from magiclib.data.text import words

    texts = ["Hello, World! hello world", "", "naïve café: 42 cafés", "x-y_z WORLD"]
    hashes, doc = word_hashes(texts)
    split = [w for t in texts for w in words(t)]
    assert doc.tolist() == [i for i, t in enumerate(texts) for _ in words(t)]
    assert len({(w, h) for w, h in zip(split, hashes.tolist(), strict=True)}) == len(set(split)) == len(set(hashes))


def test_ngrams_are_the_same_in_chunks(monkeypatch):
    from magiclib.data import decontam

    texts = [f"{ITEM} number {i}" for i in range(7)] + ["", "short"]
    whole = decontam.doc_ngrams(texts, 13)
    monkeypatch.setattr(decontam, "CHUNK_CHARS", 150)  # a chunk or two documents each
    chunked = decontam.doc_ngrams(texts, 13)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True)) and len(whole[0]) > 0
