"""Heuristic quality rules for web text (V1, RefinedWeb-style), after Gopher's (Rae et al. 2021, App. A).

`heuristic_reason(text)` returns why a document fails, or None when it passes. RefinedWeb applies these
document-level rules (length, word shape, symbols, stop words, repetition) before deduplication; the
thresholds are Gopher's.
"""

from __future__ import annotations

import numpy as np

from .text import ngram_hashes

MIN_WORDS, MAX_WORDS = 50, 100_000
MEAN_WORD_LENGTH = (3.0, 10.0)
MAX_SYMBOL_RATIO = 0.1  # '#' and ellipses per word
MIN_ALPHA_WORDS = 0.8  # share of words with at least one letter
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
MIN_STOP_WORDS = 2
MAX_BULLET_LINES, MAX_ELLIPSIS_LINES = 0.9, 0.3
MAX_DUPLICATE_LINES = 0.3  # share of lines that repeat an earlier line
MAX_TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}  # characters in the most frequent n-gram
MAX_DUPLICATE_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}  # characters in repeated n-grams
BULLETS = ("-", "*", "•", "‣", "●")


def heuristic_reason(text: str) -> str | None:
    """The first rule a document breaks, as 'rule: detail', or None when it passes them all."""
    tokens = text.split()
    n = len(tokens)
    if not MIN_WORDS <= n <= MAX_WORDS:
        return f"length: {n} words (keep {MIN_WORDS}..{MAX_WORDS})"
    mean_length = sum(map(len, tokens)) / n
    if not MEAN_WORD_LENGTH[0] <= mean_length <= MEAN_WORD_LENGTH[1]:
        return f"word length: mean {mean_length:.1f} characters"
    symbols = (text.count("#") + text.count("...") + text.count("…")) / n
    if symbols > MAX_SYMBOL_RATIO:
        return f"symbols: {symbols:.2f} per word"
    alpha = sum(any(c.isalpha() for c in t) for t in tokens) / n
    if alpha < MIN_ALPHA_WORDS:
        return f"alphabetic words: {alpha:.2f} of words"
    lowered = [t.lower() for t in tokens]
    if sum(t in STOP_WORDS for t in lowered) < MIN_STOP_WORDS:
        return f"stop words: fewer than {MIN_STOP_WORDS}"
    return _line_reason(text) or _repetition_reason(lowered)


def _line_reason(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    bullets = sum(line.startswith(BULLETS) for line in lines) / len(lines)
    if bullets > MAX_BULLET_LINES:
        return f"bullet lines: {bullets:.2f} of lines"
    ellipses = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
    if ellipses > MAX_ELLIPSIS_LINES:
        return f"ellipsis lines: {ellipses:.2f} of lines"
    repeated = 1 - len(set(lines)) / len(lines)
    if repeated > MAX_DUPLICATE_LINES:
        return f"repeated lines: {repeated:.2f} of lines"
    return None


def _repetition_reason(tokens: list[str]) -> str | None:
    # Word ids local to the document: exact, and much cheaper than hashing strings for one short text.
    vocabulary: dict[str, int] = {}
    hashes = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in tokens], dtype=np.uint64)
    lengths = np.array([len(t) for t in tokens])
    total_chars = lengths.sum()
    for n, limit in MAX_TOP_NGRAM.items():
        _, first, counts = np.unique(ngram_hashes(hashes, n), return_index=True, return_counts=True)
        top = counts.argmax()
        # Gopher: the characters of all occurrences of the most frequent n-gram, when it repeats at all.
        gram_chars = lengths[first[top]:first[top] + n].sum()
        share = counts[top] * gram_chars / total_chars if counts[top] > 1 else 0.0
        if share > limit:
            return f"top {n}-gram: covers {share:.2f} of characters"
    for n, limit in MAX_DUPLICATE_NGRAM.items():
        grams = ngram_hashes(hashes, n)
        _, inverse, counts = np.unique(grams, return_inverse=True, return_counts=True)
        starts = np.flatnonzero(counts[inverse] > 1)
        covered = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.add.at(covered, starts, 1)
        np.add.at(covered, starts + n, -1)
        share = lengths[np.cumsum(covered)[:-1] > 0].sum() / total_chars
        if share > limit:
            return f"repeated {n}-grams: cover {share:.2f} of characters"
    return None
