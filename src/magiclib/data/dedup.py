"""Exact and near-duplicate removal (the dedup half of RefinedWeb's pipeline), one batch at a time.

Exact: documents equal after lower-casing and dropping punctuation and spacing. Near: MinHash over word
5-grams with LSH (`datasketch`), a document dropped when its estimated Jaccard similarity to an earlier
kept one reaches the threshold. The first occurrence is kept, so the result depends only on the order.

Both keep state across batches, a fixed amount per document whatever its length: an 8-byte hash per
distinct document (exact), a 128-value signature and its LSH bands per kept document (near).
"""

from __future__ import annotations

import hashlib

import numpy as np
from datasketch import MinHash, MinHashLSH

from .text import doc_ngrams, words

SHINGLE = 5  # words per shingle, as in RefinedWeb's MinHash stage
NUM_PERM = 128


class ExactDedup:
    """Remembers an 8-byte hash of every distinct document seen (not its text, nor its id)."""

    def __init__(self):
        self.seen: set[int] = set()

    def reason(self, text: str) -> str | None:
        """None for a first occurrence, else why the document is a duplicate."""
        key = int.from_bytes(hashlib.blake2b(" ".join(words(text)).encode(), digest_size=8).digest(), "little")
        if key in self.seen:
            return "exact duplicate: same words as an earlier document"
        self.seen.add(key)
        return None


class NearDedup:
    """An LSH index of the kept documents' MinHash signatures, fed batch by batch."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.kept: list[tuple[str, MinHash]] = []  # (id, signature) of each document in the index

    def reasons(self, ids: list[str], texts: list[str]) -> list[str | None]:
        """For each document: None when no earlier kept document is a near duplicate, else which one is.

        Documents shorter than one shingle have no MinHash and are left alone.
        """
        grams, doc = doc_ngrams(texts, SHINGLE)
        bounds = np.searchsorted(doc, np.arange(len(texts) + 1))
        shingles = [grams[bounds[i]:bounds[i + 1]] for i in range(len(texts))]
        # The shingles are already 64-bit hashes: MinHash permutes them as they are (no sha1 per shingle).
        sketches = MinHash.bulk(shingles, num_perm=NUM_PERM, scheme="affine64", hashfunc=int)
        reasons: list[str | None] = []
        for doc_id, doc_shingles, sketch in zip(ids, shingles, sketches, strict=True):
            if not len(doc_shingles):
                reasons.append(None)
                continue
            similar = [(sketch.jaccard(self.kept[j][1]), -j) for j in self.lsh.query(sketch)]
            best = max(similar, default=(0.0, 0))
            if best[0] >= self.threshold:
                reasons.append(f"near duplicate: of {self.kept[-best[1]][0]} (Jaccard ~{best[0]:.2f})")
            else:
                reasons.append(None)
                self.lsh.insert(len(self.kept), sketch)
                self.kept.append((doc_id, sketch))
        return reasons


def exact_duplicate_reasons(texts: list[str]) -> list[str | None]:
    """For each document of a list: None for a first occurrence, else why it is a duplicate."""
    dedup = ExactDedup()
    return [dedup.reason(text) for text in texts]


def near_duplicate_reasons(ids: list[str], texts: list[str], threshold: float) -> list[str | None]:
    """For each document of a list: None when no earlier kept document is a near duplicate, else which one."""
    return NearDedup(threshold).reasons(ids, texts)
