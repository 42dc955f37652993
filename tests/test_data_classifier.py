"""The hashed n-gram logistic regression ranks positive-like web documents first."""

import numpy as np

from magiclib.data.classifier import features, fit_folds, fit_logistic, fold_scores, top_fraction

SCIENCE = ["the cell membrane controls which molecules enter the cell by diffusion and active transport",
           "energy is conserved when the pendulum swings because kinetic and potential energy exchange",
           "the theorem follows from the definition of a continuous function on a closed interval",
           "photosynthesis converts light energy into chemical energy stored in glucose molecules"]
CHATTER = ["lol cant believe the game last night omg what a finish",
           "anyone know a good pizza place near the station? starving",
           "my cat knocked the plant over again haha so annoying",
           "best deals this weekend only buy now limited stock hurry"]


def test_features_are_normalised_rows():
    x = features(SCIENCE + ["", "word"])
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    assert np.allclose(norms[:4], 1) and norms[4] == 0 and np.isclose(norms[5], 1)


def test_logistic_regression_separates_classes():
    x = features(SCIENCE + CHATTER)
    y = np.array([1] * 4 + [0] * 4)
    params = fit_logistic(x, y)
    logits = x @ params[:-1] + params[-1]
    assert (logits[:4] > 0).all() and (logits[4:] < 0).all()


def test_cross_fitted_scores_rank_science_like_web_first():
    positives = SCIENCE * 5
    candidates = [c + f" post {i}" for i, c in enumerate(CHATTER * 5)]
    candidates += ["molecules and energy in the cell: a short explanation of diffusion",
                   "a continuous function on a closed interval attains its maximum, the theorem says"]
    fold = np.arange(len(candidates)) % 2
    x = features(candidates)
    scores = fold_scores(fit_folds(features(positives), x, fold), x, fold)
    keep = top_fraction(scores, 0.1)
    assert keep[-2:].all() and keep.sum() == 3


def test_top_fraction_keeps_ceil_and_breaks_ties_by_order():
    assert top_fraction(np.array([1.0, 3.0, 2.0, 3.0]), 0.5).tolist() == [False, True, False, True]
    assert top_fraction(np.array([1.0, 1.0, 1.0]), 0.5).tolist() == [True, True, False]
