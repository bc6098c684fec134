"""mixture-log-loss against the spec's computed value, a float64 reference written with
math.fsum, and the closed-form bounds of a Bayesian mixture under log-loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import xent_core


def _est(**kw):
    return xent_core.estimator("mixture-log-loss", **kw)


def _ref_sequential(lp: np.ndarray, w: np.ndarray) -> tuple[float, list[float]]:
    """Mixture and member cumulative log-losses, scaled by the best member's joint probability."""
    members = [-math.fsum(row) for row in lp]
    best = min(members)
    mix = best - math.log(
        math.fsum(wi * math.exp(best - lm) for wi, lm in zip(w, members, strict=True))
    )
    return mix, members


def test_spec_value():
    lp = [[-1.0, -2.0, -0.5], [-0.8, -0.9, -1.2]]
    value, d = _est()(lp, [0.5, 0.5], details=True)
    assert value == pytest.approx(3.1556592301, abs=1e-10)
    assert d["best"] == pytest.approx(2.9, abs=1e-12) and d["best_member"] == 1
    assert d["regret"] == pytest.approx(0.2556592301, abs=1e-10)
    assert d["regret"] <= d["bound"] == pytest.approx(math.log(2), abs=1e-15)
    assert _est(statistic="regret")(lp) == pytest.approx(0.2556592301, abs=1e-10)  # uniform default


@pytest.mark.parametrize(("m", "n"), [(3, 17), (7, 5), (1, 9)])
def test_sequential_matches_float64_reference_and_bounds(m, n):
    rng = np.random.default_rng(m * 31 + n)
    lp = np.log(rng.dirichlet(np.ones(4), size=(m, n))[..., 0])
    w = rng.random(m) + 0.1
    w_n = w / w.sum()
    value, d = _est()(lp, w, details=True)
    mix, members = _ref_sequential(lp, w_n)
    assert value == pytest.approx(mix, rel=1e-13)
    np.testing.assert_allclose(d["members"], members, rtol=1e-14)
    best = int(np.argmin(members))
    assert d["best_member"] == best
    # 0 <= regret <= -log w_best, for every data sequence
    assert -1e-12 <= d["regret"] <= -math.log(w_n[best]) + 1e-12
    post = w_n * np.exp(-(np.array(members) - min(members)))
    np.testing.assert_allclose(d["posterior"], post / post.sum(), rtol=1e-12)
    torch_value = _est()(torch.from_numpy(lp), torch.from_numpy(w))
    assert torch_value == pytest.approx(value, rel=1e-14)


def test_uniform_prior_regret_reaches_log_k_when_one_member_dominates():
    k, n = 5, 11
    rng = np.random.default_rng(4)
    good = -rng.random(n)
    lp = np.vstack([good, *(good - 200.0 for _ in range(k - 1))])  # others 200 nats/step worse
    value, d = _est()(lp, details=True)
    assert d["regret"] == pytest.approx(math.log(k), abs=1e-12)  # the bound is attained
    assert value == pytest.approx(-good.sum() + math.log(k), rel=1e-14)
    same = np.vstack([good] * k)  # identical members: no regret
    assert _est(statistic="regret")(same) == pytest.approx(0.0, abs=1e-12)


def test_weights_are_normalised_and_zero_weight_members_drop_out():
    lp = np.array([[-1.0, -0.2], [-0.1, -0.3], [-3.0, -2.0]])
    assert _est()(lp, [2.0, 2.0, 0.0]) == pytest.approx(_est()(lp[:2]), rel=1e-14)
    _, d = _est()(lp, [0.0, 1.0, 1.0], details=True)
    assert d["best_member"] == 1 and d["bound"] == pytest.approx(math.log(2))
    _, d = _est()(lp, [1.0, 0.0, 0.0], details=True)
    assert d["best_member"] == 1 and d["bound"] == math.inf  # the best member has no prior mass


def test_per_example_ensemble_nll_and_its_bounds():
    rng = np.random.default_rng(9)
    m, n = 4, 23
    lp = np.log(rng.dirichlet(np.ones(6), size=(m, n))[..., 0])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    value, d = _est(mode="per-example")(lp, w, details=True)
    ref = (
        math.fsum(
            -math.log(math.fsum(w[k] * math.exp(lp[k, t]) for k in range(m))) for t in range(n)
        )
        / n
    )
    assert value == pytest.approx(ref, rel=1e-13)
    members = [-math.fsum(row) / n for row in lp]
    np.testing.assert_allclose(d["members"], members, rtol=1e-13)
    assert value <= d["jensen_bound"] + 1e-12  # Jensen: the ensemble beats the average member
    assert d["jensen_bound"] == pytest.approx(math.fsum(w * np.array(members)), rel=1e-13)
    assert value <= d["best"] + d["bound"] + 1e-12
    assert _est(mode="per-example", base=2)(lp, w) == pytest.approx(value / math.log(2), rel=1e-14)


def test_bad_inputs_and_parameters():
    lp = np.array([[-1.0, -2.0], [-0.5, -0.7]])
    for bad_w in ([1.0], [1.0, -1.0], [0.0, 0.0], [1.0, math.nan], [[1.0, 1.0]]):
        with pytest.raises(xent_core.BadInputError):
            _est()(lp, bad_w)
    with pytest.raises(xent_core.BadInputError):
        _est()(np.array([-1.0, -2.0]))  # (M, n) needed, not a vector
    with pytest.raises(xent_core.BadInputError):
        _est()(np.array([[-1.0, -math.inf]]))
    with pytest.raises(xent_core.BadParameterError):
        _est(mode="iid")
    with pytest.raises(xent_core.BadParameterError):
        _est(statistic="bound")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_match_cpu():
    lp = np.log(np.random.default_rng(1).uniform(0.1, 0.9, size=(5, 33)))
    for mode in ("sequential", "per-example"):
        cpu = _est(mode=mode)(lp)
        assert _est(mode=mode)(torch.from_numpy(lp).cuda()) == pytest.approx(cpu, rel=1e-12)
