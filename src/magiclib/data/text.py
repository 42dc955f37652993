"""Text primitives shared by the filters: word splitting, stable word and n-gram hashes, token estimates.

Hashes must be the same in every process and on every run (Python's own `hash` of a string is salted per
process), so words are hashed with pandas' fixed-key SipHash and n-grams are rolled from those in numpy.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

# Every byte but a-z and 0-9 becomes a space; non-ASCII characters, encoded as '?', split words too.
_SEPARATE = bytes(c if chr(c) in string.ascii_lowercase + string.digits else 32 for c in range(256))
_ROLL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier: n-gram hash = polynomial in the word hashes


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens: the unit of decontamination, dedup and the classifiers' features."""
    # The same split as re.findall("[a-z0-9]+", text.lower()), with C string methods only (faster).
    return text.lower().encode("ascii", "replace").translate(_SEPARATE).decode("ascii").split()


def hash_words(tokens: list[str]) -> np.ndarray:
    """A stable uint64 hash per word."""
    return pd.util.hash_array(np.asarray(tokens, dtype=object))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every run of `n` consecutive word hashes (empty when there are fewer than n words)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = hashes[:count].copy()
    for i in range(1, n):
        out = out * _ROLL + hashes[i:i + count]  # uint64 arithmetic wraps: a hash, not a number
    return out


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy's hash-based np.unique is many times slower on random uint64 hashes."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def doc_ngrams(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes of many documents at once, with the index of the document each one comes from."""
    tokens = [words(t) for t in texts]
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    flat = hash_words([w for t in tokens for w in t])
    doc = np.repeat(np.arange(len(texts)), lengths)
    grams = ngram_hashes(flat, n)
    inside = doc[:len(grams)] == doc[n - 1:n - 1 + len(grams)]  # drop n-grams that straddle two documents
    return grams[inside], doc[:len(grams)][inside]


def approx_tokens(texts: list[str], code: bool) -> int:
    """Rough token count without a tokenizer: words x 1.3 for text, characters / 3.5 for code."""
    if code:
        return round(sum(len(t) for t in texts) / 3.5)
    return round(sum(len(t.split()) for t in texts) * 1.3)
