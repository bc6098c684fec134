"""Neighbour, Gaussian and discrete estimators against closed forms and peers.

Tolerances are stated at the given N; seeds are fixed so a failure is a regression, but the
tolerances are set to several standard deviations of the estimator at that N (measured).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

import xent_core
from xent_core import BadInputError, BadParameterError


def est(name, **params):
    return xent_core.estimator(name, **params)


def normal_entropy(d: int) -> float:
    return 0.5 * d * math.log(2 * math.pi * math.e)


# ------------------------------------------------------------------ knn-entropy
@pytest.mark.parametrize(("d", "n", "tol"), [(1, 4000, 0.03), (3, 4000, 0.1)])
def test_knn_entropy_standard_normal(d, n, tol):
    x = np.random.default_rng(81 + d).normal(size=(n, d))
    assert est("knn-entropy")(x) == pytest.approx(normal_entropy(d), abs=tol)
    assert est("knn-entropy", norm="max")(x) == pytest.approx(normal_entropy(d), abs=tol + 0.02)


def test_knn_entropy_uniform_cube_and_units():
    rng = np.random.default_rng(84)
    x = rng.uniform(0, 2, size=(4000, 2))  # H = 2 log 2; boundary bias about +0.03 at this N
    h = est("knn-entropy")(x)
    assert h == pytest.approx(2 * math.log(2), abs=0.06)
    assert est("knn-entropy", base=2)(x) == pytest.approx(h / math.log(2), rel=1e-12)
    assert est("knn-entropy", k=5)(x) == pytest.approx(2 * math.log(2), abs=0.06)
    # scaling by a multiplies the density support volume by a^d: H shifts by d log a exactly
    assert est("knn-entropy")(3.0 * x) == pytest.approx(h + 2 * math.log(3.0), rel=1e-10)


def test_knn_entropy_matches_a_brute_force_reference():
    from scipy.special import digamma, gammaln

    rng = np.random.default_rng(85)
    x = rng.normal(size=(203, 3))
    d2 = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    eps = np.sort(d2, axis=1)[:, 4]  # k = 4 (column 0 is the point itself)
    log_vd = 1.5 * math.log(math.pi) - gammaln(2.5)
    ref = digamma(203) - digamma(4) + log_vd + 3 * np.log(eps).mean()
    assert est("knn-entropy", k=4)(torch.from_numpy(x)) == pytest.approx(ref, rel=1e-12)


def test_knn_entropy_known_high_dimensional_bias():
    """Documented, not hidden: at d = 20 and N = 2000 the estimate is about 1 nat too high."""
    x = np.random.default_rng(86).normal(size=(2000, 20))
    bias = est("knn-entropy")(x) - normal_entropy(20)
    assert 0.5 < bias < 1.5


def test_knn_entropy_bad_inputs():
    with pytest.raises(BadInputError, match="duplicates"):
        est("knn-entropy")(np.zeros((10, 2)))
    with pytest.raises(BadInputError, match="at least 4 samples"):
        est("knn-entropy")(np.ones((3, 2)))
    with pytest.raises(BadInputError, match="NaN"):
        est("knn-entropy")(np.array([0.0, 1.0, np.inf, 2.0, 3.0]))
    with pytest.raises(BadParameterError, match="norm"):
        est("knn-entropy", norm="manhattan")
    with pytest.raises(BadParameterError, match="k must"):
        est("knn-entropy", k=0)


# ------------------------------------------------------------------ ksg-mi
@pytest.mark.parametrize(("rho", "tol"), [(0.0, 0.03), (0.6, 0.04), (0.9, 0.05)])
def test_ksg_bivariate_gaussian(rho, tol):
    rng = np.random.default_rng(91)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=4000)
    truth = -0.5 * math.log(1 - rho**2)
    assert est("ksg-mi")(z[:, 0], z[:, 1]) == pytest.approx(truth, abs=tol)


def test_ksg_independent_uniform_cubes_and_multivariate_gaussian():
    rng = np.random.default_rng(92)
    mi = est("ksg-mi")(rng.uniform(size=(3000, 2)), rng.uniform(size=(3000, 2)))
    assert abs(mi) < 0.03
    # x in R^2, y = x + noise in R^2: I = sum_i 0.5 log(1 + 1/s^2) over the two coordinates
    x = rng.normal(size=(4000, 2))
    y = x + 0.5 * rng.normal(size=(4000, 2))
    truth = 2 * 0.5 * math.log(1 + 1 / 0.25)
    assert est("ksg-mi")(x, y) == pytest.approx(truth, abs=0.08)


def test_ksg_matches_scikit_learn_mutual_info_regression():
    feature_selection = pytest.importorskip("sklearn.feature_selection")
    rng = np.random.default_rng(93)
    x = rng.normal(size=500)
    y = np.sin(2 * x) + 0.3 * rng.normal(size=500)
    # scikit-learn standardises both variables and adds 1e-10-scale noise; with continuous data
    # the neighbour sets are the same, so the two agree to round-off
    for k in (3, 7):
        ref = feature_selection.mutual_info_regression(
            x[:, None], y, n_neighbors=k, random_state=0
        )[0]
        assert est("ksg-mi", k=k)(x, y) == pytest.approx(ref, rel=1e-6)


def test_ksg_units_and_symmetry():
    rng = np.random.default_rng(94)
    z = rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], size=800)
    mi = est("ksg-mi")(z[:, 0], z[:, 1])
    assert est("ksg-mi")(z[:, 1], z[:, 0]) == pytest.approx(mi, rel=1e-12)
    assert est("ksg-mi", base=2)(z[:, 0], z[:, 1]) == pytest.approx(mi / math.log(2), rel=1e-12)


def test_ksg_bad_inputs():
    x = np.random.default_rng(95).normal(size=(20, 2))
    with pytest.raises(BadInputError, match="two inputs"):
        est("ksg-mi")(x)
    with pytest.raises(BadInputError, match="same number of rows"):
        est("ksg-mi")(x, x[:19])
    with pytest.raises(BadInputError, match="duplicates"):
        est("ksg-mi")(np.zeros(20), np.zeros(20))


# ------------------------------------------------------------------ gaussian-entropy
def test_gaussian_entropy_closed_form_and_correlated_covariance():
    rng = np.random.default_rng(101)
    x = rng.normal(size=(20000, 4))
    assert est("gaussian-entropy")(x) == pytest.approx(normal_entropy(4), abs=0.03)
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])
    z = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    truth = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    assert est("gaussian-entropy")(z) == pytest.approx(truth, abs=0.03)
    # exact for the sample covariance
    s = np.cov(z, rowvar=False)
    exact = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * s))
    assert est("gaussian-entropy")(z) == pytest.approx(exact, rel=1e-12)
    assert est("gaussian-entropy", base=2)(z) == pytest.approx(exact / math.log(2), rel=1e-12)


def test_gaussian_entropy_bias_correction_removes_the_small_sample_bias():
    rng = np.random.default_rng(102)
    n, d, reps = 12, 4, 400
    truth = normal_entropy(d)
    plain = np.mean([est("gaussian-entropy")(rng.normal(size=(n, d))) for _ in range(reps)])
    fixed = np.mean(
        [
            est("gaussian-entropy", bias_correction=True)(rng.normal(size=(n, d)))
            for _ in range(reps)
        ]
    )
    assert plain - truth < -0.5  # plain estimate biased low by about 0.9 nats here
    assert fixed == pytest.approx(truth, abs=0.12)  # ~3 standard errors of the mean


def test_gaussian_entropy_bad_inputs():
    with pytest.raises(BadInputError, match="n > d"):
        est("gaussian-entropy")(np.random.default_rng(0).normal(size=(3, 3)))
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(BadInputError, match="singular"):
        est("gaussian-entropy")(np.hstack([x, x[:, :1]]))


# ------------------------------------------------------------------ discrete
def test_plugin_entropy_against_scipy_samples_counts_and_rows():
    rng = np.random.default_rng(111)
    s = rng.integers(0, 9, size=701)
    counts = np.bincount(s)
    ref = scipy_entropy(counts)
    assert est("plugin-entropy")(s) == pytest.approx(ref, rel=1e-12)
    assert est("plugin-entropy", input="counts")(np.append(counts, 0)) == pytest.approx(ref)
    assert est("plugin-entropy", base=2)(torch.from_numpy(s)) == pytest.approx(
        scipy_entropy(counts, base=2), rel=1e-12
    )
    words = np.array(["a", "b", "a", "c", "a", "b"])
    assert est("plugin-entropy")(words) == pytest.approx(scipy_entropy([3, 2, 1]))
    pairs = np.stack([s % 3, s // 3], axis=1)  # joint symbol = row
    assert est("plugin-entropy")(pairs) == pytest.approx(ref, rel=1e-12)
    big = rng.integers(0, 16, size=200000)
    assert est("plugin-entropy")(big) == pytest.approx(math.log(16), abs=1e-3)


def test_miller_madow_formula():
    counts = np.array([5, 3, 1, 1, 0, 10])
    n, m = 20, 5
    ref = scipy_entropy(counts) + (m - 1) / (2 * n)
    value, details = est("miller-madow", input="counts")(counts, details=True)
    assert value == pytest.approx(ref, rel=1e-12)
    assert details["support"] == m and details["n"] == n


def test_chao_shen_formula_and_its_bias_reduction():
    counts = np.array([4.0, 2, 1, 1, 1])
    n, f1 = 9, 3
    c = 1 - f1 / n
    pa = c * counts / n
    ref = -(pa * np.log(pa) / (1 - (1 - pa) ** n)).sum()
    assert est("chao-shen", input="counts")(counts) == pytest.approx(ref, rel=1e-12)
    # all singletons: f1 is set to N - 1 so the coverage is not zero
    value, details = est("chao-shen")(np.arange(7), details=True)
    assert details["coverage"] == pytest.approx(1 / 7) and math.isfinite(value)
    # undersampled uniform over 200 symbols, N = 100: plug-in is far too low, Chao-Shen closer
    rng = np.random.default_rng(112)
    draws = [rng.integers(0, 200, size=100) for _ in range(60)]
    truth = math.log(200)
    plug = np.mean([est("plugin-entropy")(s) for s in draws])
    mm = np.mean([est("miller-madow")(s) for s in draws])
    cs = np.mean([est("chao-shen")(s) for s in draws])
    assert truth - plug > 0.6
    assert abs(cs - truth) < abs(mm - truth) < abs(plug - truth)


def test_discrete_bad_inputs():
    with pytest.raises(BadInputError, match="empty"):
        est("plugin-entropy")(np.array([]))
    with pytest.raises(BadInputError, match="whole numbers"):
        est("plugin-entropy", input="counts")(np.array([0.5, 0.5]))
    with pytest.raises(BadInputError, match=">= 0"):
        est("miller-madow", input="counts")(np.array([3, -1]))
    with pytest.raises(BadInputError, match="NaN"):
        est("plugin-entropy")(np.array([1.0, np.nan]))
    with pytest.raises(BadInputError, match="at least 2"):
        est("chao-shen")(np.array([3]))
    with pytest.raises(BadParameterError, match="input"):
        est("chao-shen", input="histogram")
    with pytest.raises(BadParameterError, match="base"):
        est("plugin-entropy", base=1)
