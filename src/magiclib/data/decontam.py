"""Decontamination: drop training documents that share an n-gram with any evaluation item.

As in GPT-3 and the Pile, a document is contaminated when it shares an n-gram (13 by default) of
lower-cased alphanumeric words with the text of any benchmark item (its context followed by each answer
choice). Items shorter than n words cannot be matched this way.

Every document of the corpus goes through this check, so its words are hashed here in numpy over a whole
batch's bytes (the split of `text.words`, several times faster than hashing word strings); the benchmarks'
index and the documents use the same hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .text import _SEPARATE, ngram_hashes, sorted_unique, words

_BASE = 0x100000001B3  # odd: invertible modulo 2**64, so a word's hash can be read off prefix sums
_BASE_INVERSE = pow(_BASE, -1, 2**64)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))  # splitmix64's finaliser


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 hash of every word (as `text.words` splits them) of many documents, and each word's document."""
    encoded = [t.lower().encode("ascii", "replace") for t in texts]
    data = np.frombuffer(b" ".join(encoded).translate(_SEPARATE), dtype=np.uint8)
    inside = np.concatenate([[False], data != 32, [False]])
    edges = np.flatnonzero(inside[1:] != inside[:-1])
    starts, ends = edges[::2], edges[1::2]
    # hash(word) = sum of byte[i] * BASE**(i - start): a difference of prefix sums, scaled back by BASE**-start
    # (uint64 arithmetic wraps: everything is modulo 2**64).
    powers, inverses = _powers(len(data))
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(data * powers[:len(data)])])
    hashes = (prefix[ends] - prefix[starts]) * inverses[starts]
    for shift, multiplier in ((30, _MIX[0]), (27, _MIX[1])):  # mix the bits: the sum alone is linear in the bytes
        hashes = (hashes ^ (hashes >> np.uint64(shift))) * multiplier
    hashes ^= hashes >> np.uint64(31)
    first_byte = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
    return hashes, np.searchsorted(first_byte, starts, side="right") - 1


CHUNK_CHARS = 2**20
_POWERS: list[np.ndarray] = []


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**(i+1) and BASE**-(i+1) for i < at least n, kept between calls (16 bytes per character of the
    largest chunk, about CHUNK_CHARS) since computing them costs as much as the rest of the hashing."""
    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, CHUNK_CHARS + 2**16)
        _POWERS[:] = [np.cumprod(np.full(size, base, dtype=np.uint64)) for base in (_BASE, _BASE_INVERSE)]
    return _POWERS[0], _POWERS[1]


def doc_ngrams(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes of many documents at once, with the index of the document each one comes from.
    Hashed in chunks of about `CHUNK_CHARS` characters, which bound the hash's scratch arrays."""
    grams, docs, first = [np.empty(0, dtype=np.uint64)], [np.empty(0, dtype=np.int64)], 0
    while first < len(texts):
        last, chars = first, 0
        while last < len(texts) and (last == first or chars + len(texts[last]) <= CHUNK_CHARS):
            chars += len(texts[last])
            last += 1
        hashes, doc = word_hashes(texts[first:last])
        chunk = ngram_hashes(hashes, n)
        inside = doc[:len(chunk)] == doc[n - 1:n - 1 + len(chunk)]  # drop n-grams that straddle two documents
        grams.append(chunk[inside])
        docs.append(doc[:len(chunk)][inside] + first)
        first = last
    return np.concatenate(grams), np.concatenate(docs)


@dataclass(frozen=True)
class NgramIndex:
    """The n-grams of every benchmark's items: hashes sorted, each with the benchmark it comes from."""

    n: int
    benchmarks: tuple[str, ...]
    hashes: np.ndarray  # sorted; a hash shared by two benchmarks appears twice
    owners: np.ndarray  # index into `benchmarks`, aligned with `hashes`

    @classmethod
    def from_texts(cls, texts_by_benchmark: dict[str, list[str]], n: int) -> NgramIndex:
        per_benchmark = [sorted_unique(doc_ngrams(texts, n)[0]) for texts in texts_by_benchmark.values()]
        hashes = np.concatenate([np.empty(0, dtype=np.uint64), *per_benchmark])
        owners = np.repeat(np.arange(len(per_benchmark)), [len(h) for h in per_benchmark])
        order = np.argsort(hashes, kind="stable")
        return cls(n, tuple(texts_by_benchmark), hashes[order], owners[order])

    def overlaps(self, texts: list[str]) -> list[list[str]]:
        """For each document, the benchmarks it shares an n-gram with (empty when clean)."""
        grams, doc = doc_ngrams(texts, self.n)
        order = np.argsort(grams)  # sorted needles make searchsorted cache-friendly: several times faster
        grams, doc = grams[order], doc[order]
        first = np.searchsorted(self.hashes, grams, side="left")
        # Almost no n-gram matches: find the end of each run of equal hashes only for those that do.
        hit = first < len(self.hashes)
        hit[hit] = self.hashes[first[hit]] == grams[hit]
        grams, doc, first = grams[hit], doc[hit], first[hit]
        count = np.searchsorted(self.hashes, grams, side="right") - first
        # Expand each matching n-gram to every benchmark that holds it (almost always exactly one).
        slots = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(first, count)
        pairs = sorted(set(zip(np.repeat(doc, count).tolist(), self.owners[slots].tolist(), strict=True)))
        found: list[list[str]] = [[] for _ in texts]
        for d, owner in pairs:
            found[d].append(self.benchmarks[owner])
        return found


def study_benchmark_texts(n: int) -> dict[str, list[str]]:
    """The text of every item of the study's benchmarks, for n-gram matching.

    An item is scored as context + choice; its n-grams are those of the context, plus those that end in
    a choice, which need only the context's last n - 1 words. Contexts repeat (one passage serves many
    MultiRC or BoolQ questions), so each distinct text is kept once.
    """
    from ..benchmarks import STUDY_BENCHMARKS, load_items

    texts = {}
    for name in tqdm(STUDY_BENCHMARKS, desc="benchmark items", unit="benchmark"):
        pieces: dict[str, None] = {}
        for item in load_items(name):
            for context, choice in item.requests():
                pieces[context] = None
                pieces[" ".join(words(context)[-(n - 1):]) + choice] = None
        texts[name] = list(pieces)
    return texts
