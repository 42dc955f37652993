"""Document classifiers for the model-based web filters: V2 (educational value) and V3 (quality).

FineWeb-Edu and DCLM keep the web documents a classifier scores highest. Here the classifier is a
logistic regression on hashed word unigrams and bigrams (fastText-like features, as DCLM's filter uses),
trained on positives (curated text for V2, instruction data for V3) against the web documents
themselves as negatives. Every web document is scored by a model that never saw it (two-fold
cross-fitting), so a document's own label does not push its score down. The models are fitted on a bounded
sample of the web documents and then score any number of them, batch by batch.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, sparse
from threadpoolctl import threadpool_limits

from .text import hash_words, words

N_FEATURES = 2**18
MAX_WORDS = 500  # only the opening of a document is featurised: comparable lengths, bounded cost
L2 = 1e-4  # ridge penalty on the weights (features are L2-normalised per document)
FOLDS = 2


def features(texts: list[str]) -> sparse.csr_matrix:
    """Rows of log(1 + count) over hashed unigrams and bigrams, each row L2-normalised."""
    tokens = [words(t)[:MAX_WORDS] for t in texts]
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    hashes = hash_words([w for t in tokens for w in t])
    doc = np.repeat(np.arange(len(texts)), lengths)
    same_doc = doc[:-1] == doc[1:]
    bigrams = (hashes[:-1] * np.uint64(1_000_003) + hashes[1:])[same_doc]
    cols = (np.concatenate([hashes, bigrams]) % np.uint64(N_FEATURES)).astype(np.int64)
    rows = np.concatenate([doc, doc[:-1][same_doc]])
    counts = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(texts), N_FEATURES))
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    return sparse.diags(1 / np.maximum(norms, 1e-12)) @ counts


def fit_logistic(x: sparse.csr_matrix, y: np.ndarray) -> np.ndarray:
    """Class-balanced, L2-penalised logistic regression by L-BFGS; returns weights with the bias last."""
    weight = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum()))
    sign = 2.0 * y - 1.0

    def loss(params):
        w, b = params[:-1], params[-1]
        margin = sign * (x @ w + b)
        value = weight @ np.logaddexp(0, -margin) + 0.5 * L2 * w @ w
        slope = -weight * sign * np.exp(-np.logaddexp(0, margin))  # d loss / d logit, overflow-safe
        return value, np.append(x.T @ slope + L2 * w, slope.sum())

    # Vectors this size gain nothing from threaded BLAS, and on busy shared cores its spinning threads
    # make L-BFGS-B tens of times slower.
    with threadpool_limits(limits=1):
        result = optimize.minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                                   options={"maxiter": 200})
    return result.x


def fit_folds(x_pos: sparse.csr_matrix, x_neg: sparse.csr_matrix, fold: np.ndarray) -> list[np.ndarray]:
    """One model per fold k: trained on the positives' and the negatives' `features` outside fold k
    (`fold[i]` is negative i's fold)."""
    models = []
    for k in range(FOLDS):
        train = fold != k
        x = sparse.vstack([x_pos, x_neg[train]]).tocsr()
        y = np.concatenate([np.ones(x_pos.shape[0]), np.zeros(train.sum())])
        models.append(fit_logistic(x, y))
    return models


def fold_scores(models: list[np.ndarray], x: sparse.csr_matrix, fold: np.ndarray) -> np.ndarray:
    """A logit per row of `features` from the model of its fold, which was not trained on it."""
    scores = np.empty(x.shape[0])
    for k, params in enumerate(models):
        mine = fold == k
        scores[mine] = x[mine] @ params[:-1] + params[-1]
    return scores


def top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ceil(fraction * n) highest scores; ties go to the earlier document."""
    keep = np.zeros(len(scores), dtype=bool)
    keep[np.argsort(-scores, kind="stable")[:math.ceil(fraction * len(scores))]] = True
    return keep
