"""Steiger's Z and Zou's interval against published worked examples (magiclib.analysis.dependent).

Reference values, as checked by the R package cocor's own tests (Diedenhofen & Musch 2015, PLoS ONE
10(4): e0121945; tests/testthat in the cocor sources):
- Steiger, J. H. (1980). Tests for comparing elements of a correlation matrix. Psychological Bulletin,
  87, 245-251. Case A, p. 249 (overlapping): r_jk = .4, r_jh = .5, r_kh = .1, n = 103 -> Z = -0.8887185
  (the paper prints -.8913 from a rounded covariance). Case B, p. 249 (non-overlapping): r_jk = .5,
  r_hm = .6, r_jh = .8, r_jm = .5, r_kh = .5, r_km = .7, n = 103 -> Z = -1.4050 (paper: -1.4045).
- Silver, Hittner & May (2006), depcor, Applied Psychological Measurement 30, 152-153: overlapping
  (.3, .4, .5, n = 100) -> Z = -1.0718, p = .2838; non-overlapping r_jk = .3, r_hm = .4, r_jh = .5,
  r_kh = .6, r_km = .7, r_jm = .8, n = 100 -> Z = -1.0744, p = .2827.
- Zou, G. Y. (2007). Toward using confidence intervals to compare correlations. Psychological Methods,
  12, 399-413: overlapping r_jk = .396, r_jh = .179, r_kh = .088, n = 66 -> (-.093, .517);
  non-overlapping r_jk = .396, r_hm = .189, r_jh = .208, r_kh = .023, r_km = .423, r_jm = .143, n = 66
  -> (-.096, .501) (the paper prints .500).
"""

import numpy as np
import pytest

from magiclib.analysis.dependent import mean_steiger_z, steiger_z, zou_interval

J, K, H, M = 0, 1, 2, 3


def _matrix(**r):
    """A correlation matrix from named entries such as jk=.4 (variables j, k, h, m)."""
    index = {"j": J, "k": K, "h": H, "m": M}
    size = 1 + max(index[c] for name in r for c in name)
    R = np.eye(size)
    for name, value in r.items():
        a, b = index[name[0]], index[name[1]]
        R[a, b] = R[b, a] = value
    return R


def test_steiger_overlapping_case_a():
    z, _ = steiger_z(_matrix(jk=0.4, jh=0.5, kh=0.1), (J, K), (J, H), 103)
    assert z == pytest.approx(-0.8887185, abs=5e-8)


def test_steiger_overlapping_depcor():
    z, p = steiger_z(_matrix(jk=0.3, jh=0.4, kh=0.5), (J, K), (J, H), 100)
    assert (round(z, 4), round(p, 4)) == (-1.0718, 0.2838)


def test_steiger_nonoverlapping_case_b():
    z, _ = steiger_z(_matrix(jk=0.5, hm=0.6, jh=0.8, jm=0.5, kh=0.5, km=0.7), (J, K), (H, M), 103)
    assert round(z, 4) == -1.4050


def test_steiger_nonoverlapping_depcor():
    z, p = steiger_z(_matrix(jk=0.3, hm=0.4, jh=0.5, kh=0.6, km=0.7, jm=0.8), (J, K), (H, M), 100)
    assert (round(z, 4), round(p, 4)) == (-1.0744, 0.2827)


def test_zou_intervals():
    overlapping = zou_interval(_matrix(jk=0.396, jh=0.179, kh=0.088), (J, K), (J, H), 66)
    assert np.round(overlapping, 3).tolist() == [-0.093, 0.517]
    nonoverlapping = zou_interval(
        _matrix(jk=0.396, hm=0.189, jh=0.208, kh=0.023, km=0.423, jm=0.143), (J, K), (H, M), 66
    )
    assert np.round(nonoverlapping, 3).tolist() == [-0.096, 0.501]


def test_equal_correlations_give_no_difference():
    z, p = steiger_z(_matrix(jk=0.5, hm=0.5, jh=0.3, jm=0.2, kh=0.1, km=0.4), (J, K), (H, M), 50)
    assert z == pytest.approx(0.0) and p == pytest.approx(1.0)


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="correlation matrix"):
        steiger_z(np.ones((3, 2)), (0, 1), (0, 2), 50)
    with pytest.raises(ValueError, match="two different correlations"):
        steiger_z(_matrix(jk=0.3, jh=0.4, kh=0.5), (J, K), (K, J), 50)
    with pytest.raises(ValueError, match="more than 3"):
        zou_interval(_matrix(jk=0.3, jh=0.4, kh=0.5), (J, K), (J, H), 3)


def test_mean_steiger_of_one_pair_is_steiger_and_of_twins_is_zero():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 9))
    v[1] += v[0]
    v[3] += v[2] + v[0]
    assert mean_steiger_z((v[0], v[1]), (v[2], v[3])) == pytest.approx(steiger_z(np.corrcoef(v), (2, 3), (0, 1), 9))
    rows = rng.normal(size=(2, 3, 9))
    rows[1] += rows[0]
    other = rows + rng.normal(scale=0.5, size=rows.shape)
    z, p = mean_steiger_z((rows[0], rows[1]), (other[0], other[1]))
    assert np.isfinite(z) and 0 < p <= 1
    swapped_z, _ = mean_steiger_z((other[0], other[1]), (rows[0], rows[1]))
    assert swapped_z == pytest.approx(-z)  # the direction of the difference, not its size, flips


def test_mean_steiger_holds_its_level_on_normal_scores():
    # H0: equal transfer at both scales; 3 benchmarks sharing 9 mixtures. Fixed seed: cannot flake.
    rng = np.random.default_rng(5)
    rho, c = 0.5, 0.7
    within = np.array([[1, rho, c, rho * c], [rho, 1, rho * c, c], [c, rho * c, 1, rho], [rho * c, c, rho, 1]])
    R = np.kron(within, np.full((3, 3), 0.4) + 0.6 * np.eye(3))
    draws = rng.multivariate_normal(np.zeros(12), R, size=(400, 9))
    rejections = [mean_steiger_z(*np.split(d.T.reshape(4, 3, 9), 2))[1] < 0.05 for d in draws]
    assert np.mean(rejections) <= 0.07
    # and it is not a test that never rejects: transfer 0.8 at one scale, none at the other
    within[:2, 2:] = within[2:, :2] = 0
    within[0, 1] = within[1, 0] = 0.8
    within[2, 3] = within[3, 2] = 0
    draws = rng.multivariate_normal(np.zeros(12), np.kron(within, np.full((3, 3), 0.4) + 0.6 * np.eye(3)), (200, 9))
    assert np.mean([mean_steiger_z(*np.split(d.T.reshape(4, 3, 9), 2))[1] < 0.05 for d in draws]) > 0.5
