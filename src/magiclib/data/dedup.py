"""Exact and near-duplicate removal (the dedup half of RefinedWeb's pipeline).

Exact: documents equal after lower-casing and dropping punctuation and spacing. Near: MinHash over word
5-grams with LSH (`datasketch`), a document dropped when its estimated Jaccard similarity to an earlier
kept one reaches the threshold. The first occurrence is kept, so the result depends only on the order.
"""

from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH

from .text import doc_ngrams, words

SHINGLE = 5  # words per shingle, as in RefinedWeb's MinHash stage
NUM_PERM = 128


def exact_duplicate_reasons(ids: list[str], texts: list[str]) -> list[str | None]:
    """For each document: None for a first occurrence, else which earlier document it repeats."""
    first: dict[str, str] = {}
    reasons = []
    for doc_id, text in zip(ids, texts, strict=True):
        key = " ".join(words(text))
        reasons.append(f"exact duplicate: of {first[key]}" if key in first else None)
        first.setdefault(key, doc_id)
    return reasons


def near_duplicate_reasons(ids: list[str], texts: list[str], threshold: float) -> list[str | None]:
    """For each document: None when no earlier kept document is a near duplicate, else which one is.

    Documents shorter than one shingle have no MinHash and are left alone.
    """
    grams, doc = doc_ngrams(texts, SHINGLE)
    bounds = np.searchsorted(doc, np.arange(len(texts) + 1))
    shingles = [grams[bounds[i]:bounds[i + 1]] for i in range(len(texts))]
    # The shingles are already 64-bit hashes: MinHash permutes them as they are (no sha1 per shingle).
    sketches = MinHash.bulk(shingles, num_perm=NUM_PERM, scheme="affine64", hashfunc=int)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    reasons: list[str | None] = []
    for i, sketch in enumerate(sketches):
        if not len(shingles[i]):
            reasons.append(None)
            continue
        similar = [(sketch.jaccard(sketches[j]), -j) for j in lsh.query(sketch)]
        best = max(similar, default=(0.0, 0))
        if best[0] >= threshold:
            reasons.append(f"near duplicate: of {ids[-best[1]]} (Jaccard ~{best[0]:.2f})")
        else:
            reasons.append(None)
            lsh.insert(i, sketch)
    return reasons
