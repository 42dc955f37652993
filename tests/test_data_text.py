"""Word splitting, stable hashes and n-grams that never straddle two documents."""

import re

import numpy as np

from magiclib.data.text import approx_tokens, doc_ngrams, hash_words, ngram_hashes, sorted_unique, words


def test_words_match_the_lowercase_alphanumeric_regex():
    text = "Hello, World! Café 3.14 foo_bar\tKELVIN\nnaïve-test"
    assert words(text) == re.findall("[a-z0-9]+", text.lower())


def test_word_hashes_are_the_same_in_every_process():
    # pandas hashes with a fixed SipHash key; a changed value would change dedup and decontam results.
    assert hash_words(["the", "cat"]).tolist() == [16892138555348062845, 17611792558141569343]


def test_ngrams_depend_on_order_and_stay_inside_documents():
    h = hash_words(["a", "b", "c", "a", "b"])
    grams = ngram_hashes(h, 2)
    assert len(grams) == 4 and grams[0] == grams[3] and grams[0] != ngram_hashes(h[::-1], 2)[0]
    assert len(ngram_hashes(h, 6)) == 0
    grams, doc = doc_ngrams(["one two three", "four five", "six"], 2)
    assert doc.tolist() == [0, 0, 1]


def test_sorted_unique_matches_numpy():
    values = np.array([5, 1, 5, 3, 1], dtype=np.uint64)
    assert sorted_unique(values).tolist() == [1, 3, 5] and len(sorted_unique(values[:0])) == 0


def test_token_estimates():
    assert approx_tokens(["one two three four five six seven eight nine ten"], code=False) == 13
    assert approx_tokens(["x" * 35], code=True) == 10
