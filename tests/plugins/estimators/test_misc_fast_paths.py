"""Fast paths of mixture-log-loss, gaussian-entropy and ks-calibration-error agree with the
details path (which still builds every reported quantity) and keep the input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xent_core
from xent_core import BadInputError


@pytest.mark.parametrize("mode", ["sequential", "per-example"])
@pytest.mark.parametrize("statistic", ["log-loss", "regret"])
def test_mixture_value_matches_details_and_float64_formula(mode, statistic):
    rng = np.random.default_rng(0)
    lp = -rng.exponential(1.0, (4, 50))
    w = np.array([0.1, 0.0, 0.5, 0.4])
    est = xent_core.estimator("mixture-log-loss", mode=mode, statistic=statistic)
    value, d = est(lp, w), est(lp, w, details=True)
    assert value == d.value
    members = -lp.sum(1) if mode == "sequential" else -lp.mean(1)
    with np.errstate(divide="ignore"):
        lw = np.log(w / w.sum())
    if mode == "sequential":
        joint = lw - members
        mix = -(joint.max() + math.log(np.exp(joint - joint.max()).sum()))
    else:
        a = lw[:, None] + lp
        mix = -(a.max(0) + np.log(np.exp(a - a.max(0)).sum(0))).mean()
    expect = mix if statistic == "log-loss" else mix - members.min()
    assert value == pytest.approx(expect, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("mode", ["sequential", "per-example"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_mixture_non_finite_input_still_raises(mode, bad):
    lp = -np.ones((3, 5))
    lp[1, 2] = bad
    with pytest.raises(BadInputError, match="NaN or inf"):
        xent_core.estimator("mixture-log-loss", mode=mode)(lp)
    lp[2, 0] = -bad if not math.isnan(bad) else bad  # +inf and -inf in one row sum to NaN
    with pytest.raises(BadInputError, match="NaN or inf"):
        xent_core.estimator("mixture-log-loss", mode=mode)(lp)


def test_gaussian_entropy_value_matches_details():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) * 1e150
    for corr in (False, True):
        est = xent_core.estimator("gaussian-entropy", bias_correction=corr)
        assert est(x) == est(x, details=True).value


@pytest.mark.parametrize("mode", ["top-label", "binary", "classwise"])
def test_ks_value_matches_details(mode):
    rng = np.random.default_rng(2)
    c = 2 if mode == "binary" else 4
    p = rng.dirichlet(np.ones(c), size=300)
    y = rng.integers(0, c, 300)
    est = xent_core.estimator("ks-calibration-error", mode=mode)
    d = est(p, y, details=True)
    assert est(p, y) == d.value
    if mode != "classwise":
        assert d.value == np.abs(d.details["cumulative_gap"]).max()


@pytest.mark.parametrize("statistic", ["dcor", "dcov2", "u-dcov2", "u-dcor2"])
def test_distance_correlation_value_matches_details(statistic):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 2))
    y = 0.5 * x[:, :1] + rng.normal(size=(40, 1))
    est = xent_core.estimator("distance-correlation", statistic=statistic)
    d = est(x, y, details=True)
    assert est(x, y) == d.value == d.details[statistic]


def test_neighbour_distances_in_place_build_matches_formula():
    import torch
    from xent_estimators.intrinsic_dimension import neighbour_distances

    x = torch.from_numpy(np.random.default_rng(5).normal(size=(70, 3)))
    sq = x.square().sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    d2.fill_diagonal_(math.inf)
    expect = torch.topk(d2, 4, dim=1, largest=False).values.clamp_min(0).sqrt()
    assert torch.equal(neighbour_distances(x, 4, chunk=32), expect)


@pytest.mark.parametrize("method", ["scalar", "vector", "matrix"])
def test_temperature_scaling_value_matches_details(method):
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 200)
    z = 3.0 * rng.normal(size=(200, 4))
    z[np.arange(200), y] += 1.0
    y[:5] = -100  # ignored rows
    est = xent_core.estimator("temperature-scaling", method=method)
    d = est(z, y, details=True)
    assert est(z, y) == d.value == d.details["nll_after"]
    with pytest.raises(BadInputError):
        est(np.full((4, 3), math.nan), np.zeros(4, dtype=int))
