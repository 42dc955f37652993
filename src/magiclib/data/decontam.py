"""Decontamination: drop training documents that share an n-gram with any evaluation item.

As in GPT-3 and the Pile, a document is contaminated when it shares an n-gram (13 by default) of
lower-cased alphanumeric words with the text of any benchmark item (its context followed by each answer
choice). Items shorter than n words cannot be matched this way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .text import doc_ngrams, sorted_unique, words


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
