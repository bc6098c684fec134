"""distance-correlation against the spec's computed values and the dcor package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xent_core


def _est(**kw):
    return xent_core.estimator("distance-correlation", **kw)


def test_spec_reference_values():
    a = np.arange(1.0, 6.0)
    value, d = _est()(a, a**2, details=True)
    assert d["dcov2"] == pytest.approx(7.296, abs=1e-10)
    assert value == pytest.approx(0.9869160441, abs=1e-10)
    assert d["u-dcov2"] == pytest.approx(6.4, abs=1e-10)
    assert _est()(a, [2, -1, 0.5, 3, 0]) == pytest.approx(0.5547914073, abs=1e-10)
    assert _est(statistic="u-dcov2")(a, a**2) == pytest.approx(6.4, abs=1e-10)


@pytest.mark.parametrize("exponent", [1.0, 1.7])
def test_matches_dcor_on_random_multivariate_inputs(exponent):
    dcor = pytest.importorskip("dcor")
    rng = np.random.default_rng(int(exponent * 10))
    x = rng.normal(size=(37, 3))
    y = np.hstack([x[:, :1] ** 2, rng.normal(size=(37, 1))])
    _, d = _est(exponent=exponent)(x, y, details=True)
    kw = {"exponent": exponent}
    assert d["dcov2"] == pytest.approx(dcor.distance_covariance_sqr(x, y, **kw), rel=1e-10)
    assert d["dcor"] == pytest.approx(dcor.distance_correlation(x, y, **kw), rel=1e-10)
    assert d["u-dcov2"] == pytest.approx(dcor.u_distance_covariance_sqr(x, y, **kw), rel=1e-10)
    assert d["u-dcor2"] == pytest.approx(dcor.u_distance_correlation_sqr(x, y, **kw), rel=1e-9)
    tv = _est(exponent=exponent)(torch.from_numpy(x), torch.from_numpy(y))
    assert tv == pytest.approx(d["dcor"], rel=1e-12)


def test_constant_gives_zero_and_bad_inputs():
    a = np.arange(6.0)
    assert _est()(a, np.ones(6)) == 0.0
    with pytest.raises(xent_core.BadInputError):
        _est()(a)
    with pytest.raises(xent_core.BadInputError, match="paired"):
        _est()(a, a[:5])
    with pytest.raises(xent_core.BadInputError):
        _est(statistic="u-dcov2")(a[:3], a[:3])
    with pytest.raises(xent_core.BadParameterError):
        _est(exponent=2.0)
    with pytest.raises(xent_core.BadParameterError):
        _est(statistic="jdcov")
