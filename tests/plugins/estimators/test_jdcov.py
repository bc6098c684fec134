"""distance-correlation's jdcov2 (Chakraborty-Zhang joint distance covariance): identities.

The definition is checked three ways: it reduces to dCov^2 for two variables; it equals its
expansion into pairwise dCov^2 plus the third-order term, computed separately in numpy; and, as
the weighted L2 norm it is in population, its V-statistic is never negative (with the opposite
sign convention for U it is, on the same samples). Then the property it exists for: it sees
the joint dependence of pairwise-independent variables, and it vanishes (O(1/n)) for mutually
independent ones.
"""

from __future__ import annotations

import dcor
import numpy as np
import pytest

import xent_core
from xent_core import BadInputError, BadParameterError


def est(**params):
    return xent_core.estimator("distance-correlation", statistic="jdcov2", **params)


def centred(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()


def test_two_variables_give_dcov2():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(17, 3)), rng.normal(size=(17, 2))
    y[:, 0] += x[:, 0] ** 2
    for c in (0.3, 1.0, 4.0):
        assert est(c=c)(x, [y]) == pytest.approx(dcor.distance_covariance_sqr(x, y), rel=1e-10)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_expansion_into_pairwise_and_third_order_terms(c):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=13), rng.normal(size=(13, 2))
    z = x * y[:, 0] + 0.1 * rng.normal(size=13)
    value, info = est(c=c)(x, [y, z], details=True)
    pairs = sum(dcor.distance_covariance_sqr(a, b) for a, b in [(x, y), (x, z), (y, z)])
    third = -np.mean(centred(x) * centred(y) * centred(z))  # E[U1 U2 U3], U = -A
    assert value == pytest.approx(c * pairs + third, rel=1e-10)
    assert info["pairwise_dcov2"] == pytest.approx(pairs, rel=1e-10) and info["d"] == 3


def test_v_statistic_is_never_negative():
    rng = np.random.default_rng(2)
    flipped_min = np.inf
    for trial in range(300):
        n, d = int(rng.integers(3, 9)), int(rng.integers(3, 5))
        parts = [rng.normal(size=n) ** int(rng.integers(1, 4)) for _ in range(d)]
        c = float(rng.choice([0.1, 0.5, 1.0, 2.0]))
        assert est(c=c)(parts[0], parts[1:]) >= -1e-12, trial
        prod = np.prod([centred(p) + c for p in parts], axis=0)  # the other sign for U
        flipped_min = min(flipped_min, prod.mean() - c**d)
    assert flipped_min < -1.0  # so the test above can tell the two conventions apart


def test_detects_joint_dependence_that_pairs_miss():
    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.choice([-1.0, 1.0], size=n), rng.choice([-1.0, 1.0], size=n)
    z = x * y  # pairwise independent, jointly dependent
    value, info = est()(x, [y, z], details=True)
    assert info["pairwise_dcov2"] < 0.02 and value > 0.5
    indep = est()(x, [y, rng.choice([-1.0, 1.0], size=n)])
    assert indep < 0.05


def test_mutually_independent_variables_vanish_with_n():
    rng = np.random.default_rng(4)

    def mean_jd(n):
        draws = [rng.normal(size=(3, n)) for _ in range(3)]
        return np.mean([est()(x, [y, z]) for x, y, z in draws])

    small, large = mean_jd(50), mean_jd(800)
    assert large < small / 5 and large < 0.01


def test_columns_of_a_matrix_are_variables():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=9), rng.normal(size=(9, 3))
    assert est()(x, y) == pytest.approx(est()(x, [y[:, 0], y[:, 1], y[:, 2]]), rel=1e-12)


def test_bad_inputs_and_parameters():
    x = np.arange(6.0)
    with pytest.raises(BadInputError):
        est()(x, [np.arange(5.0)])
    with pytest.raises(BadInputError):
        est()(x, [np.array([1.0, np.nan, 2, 3, 4, 5])])
    with pytest.raises(BadParameterError):
        est(c=0.0)
