"""``min-k-prob`` (Min-K% and Min-K%++) against the spec's fixture and a float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators.min_k_prob import _from_logits

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64
# the spec's fixture: row 1 is uniform (sigma = 0)
LOGITS = torch.tensor(
    [[2, 1, 0, -1], [0, 0, 0, 0], [3, 0, 0, 0], [1, 2, 3, 4], [0.5, 0, -0.5, 1]], dtype=F64
)
TARGETS = torch.tensor([0, 2, 1, 3, 1])
LOGP = [-0.4401896986, -1.3862943611, -3.1392063142, -0.4401896986, -1.7873386717]
MU = [-0.9475369640, -1.3862943611, -0.5290607945, -0.9475369640, -1.2450504275]
SIGMA = [0.7852300777, 0.0, 1.0087501797, 0.7852300777, 0.5053344054]


def est(**kw):
    return xent_core.estimator("min-k-prob", **kw)


def moments_reference(logits, targets):
    """log p(target), mu and sigma by the definitions, one row at a time in numpy float64."""
    out = []
    for row, y in zip(np.asarray(logits, dtype=np.float64), np.asarray(targets)):
        lp = row - row.max() - np.log(np.exp(row - row.max()).sum())
        p = np.exp(lp)
        mu = float(p @ lp)
        out.append((lp[y], mu, math.sqrt(float(p @ (lp - mu) ** 2))))
    return np.array(out).T


def score_reference(values, k):
    """Mean of the int(k * T) (at least 1) smallest values, as the reference code counts."""
    n = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:n]))


def test_moments_of_the_spec():
    logp, mu, var = _from_logits(LOGITS, TARGETS)
    np.testing.assert_allclose(logp, LOGP, atol=5e-11)
    np.testing.assert_allclose(mu, MU, atol=5e-11)
    np.testing.assert_allclose(var.sqrt(), SIGMA, atol=5e-11)


def test_min_20_of_the_spec():
    assert est(sign="nonmember-high")(logits=LOGITS, targets=TARGETS) == pytest.approx(
        3.1392063142, abs=5e-11
    )
    assert est()(torch.tensor(LOGP, dtype=F64)) == pytest.approx(-3.1392063142, abs=5e-11)


@pytest.mark.parametrize("zero_sigma", ["zero", "drop"])
def test_min_20_plus_plus_of_the_spec(zero_sigma):
    e = est(variant="min-k++", sign="nonmember-high", zero_sigma=zero_sigma)
    value, info = e(logits=LOGITS, targets=TARGETS, details=True)
    assert value == pytest.approx(2.5875043912, abs=5e-11)
    assert info["zero_sigma_tokens"] == 1
    assert info["counted"].tolist() == [4 if zero_sigma == "drop" else 5]
    # the same from the spec's (rounded) per-token values, as mu and sigma
    value = e(
        torch.tensor(LOGP, dtype=F64),
        mu=torch.tensor(MU, dtype=F64),
        sigma=torch.tensor(SIGMA, dtype=F64),
    )
    assert value == pytest.approx(2.5875043912, abs=1e-9)


def test_uniform_distribution_is_nan_free():
    v = 7
    logits = torch.zeros(13, v, dtype=F64)
    targets = torch.arange(13) % v
    value, info = est(variant="min-k++")(logits=logits, targets=targets, details=True)
    assert value == 0.0 and info["zero_sigma_tokens"] == 13  # z = 0 for every token
    # the kernel's moments of a uniform row: sigma exactly 0, z = 0
    moments = xent_core.kernel("logprob-moments")(
        torch.eye(v, dtype=F64), torch.zeros(v, v, dtype=F64), None
    )
    assert float(moments.var_logp.abs().max()) == 0.0
    logp = torch.full((v,), -math.log(v), dtype=F64)
    assert est(variant="min-k++")(logp, entropy=moments.entropy, var_logp=moments.var_logp) == 0.0
    with pytest.raises(BadInputError, match="zero_sigma='drop' leaves none"):
        est(variant="min-k++", zero_sigma="drop")(logits=logits, targets=targets)
    # rows uniform up to rounding (1/3 is inexact) are caught by sigma_floor, not divided by
    near = torch.full((5, 3), 0.1, dtype=F64) + torch.tensor([0.0, 1e-17, 0.0], dtype=F64)
    assert est(variant="min-k++")(logits=near, targets=torch.zeros(5, dtype=torch.long)) == 0.0


def test_batched_documents_with_mask_match_the_reference():
    rng = np.random.default_rng(7)
    b, t, v, k = 4, 23, 19, 0.3
    logits = rng.normal(size=(b, t, v)) * 2
    targets = rng.integers(0, v, size=(b, t))
    lengths = [23, 11, 2, 17]
    mask = np.arange(t)[None, :] < np.array(lengths)[:, None]
    lp, mu, sg = moments_reference(logits.reshape(-1, v), targets.reshape(-1))
    lp, mu, sg = (a.reshape(b, t) for a in (lp, mu, sg))
    want_k = [score_reference(lp[i, :n], k) for i, n in enumerate(lengths)]
    z = (lp - mu) / sg
    want_pp = [score_reference(z[i, :n], k) for i, n in enumerate(lengths)]
    m = torch.tensor(mask)
    _, info = est(k=k)(torch.tensor(lp), mask=m, details=True)
    np.testing.assert_allclose(info["scores"], want_k, rtol=1e-13)
    _, info = est(k=k, variant="min-k++")(
        logits=torch.tensor(logits), targets=torch.tensor(targets), mask=m, details=True
    )
    np.testing.assert_allclose(info["scores"], want_pp, rtol=1e-12)
    # the kernel path (hidden states, no logits at vocabulary scale) gives the same scores
    moments = xent_core.kernel("logprob-moments")(
        torch.tensor(logits.reshape(-1, v)),
        torch.eye(v, dtype=F64),
        torch.tensor(targets).reshape(-1),
    )
    shaped = type(moments)(*(x.reshape(b, t) for x in moments))
    _, info = est(k=k, variant="min-k++")(shaped, mask=m, details=True)
    np.testing.assert_allclose(info["scores"], want_pp, rtol=1e-10)


@pytest.mark.parametrize(
    ("k", "t", "count"), [(0.2, 4, 1), (0.2, 15, 3), (0.29, 100, 28), (1.0, 6, 6)]
)
def test_token_count_truncates_like_the_reference(k, t, count):
    values = np.log(np.linspace(0.01, 0.99, t))[::-1].copy()
    want = float(np.mean(np.sort(values)[:count]))
    assert est(k=k)(values) == pytest.approx(want, rel=1e-14)


def test_entropy_and_mu_forms_agree():
    rng = np.random.default_rng(1)
    lp, mu, sg = moments_reference(rng.normal(size=(9, 5)), rng.integers(0, 5, size=9))
    e = est(variant="min-k++", k=0.5)
    a = e(lp, mu=mu, sigma=sg)
    assert e(lp, entropy=-mu, var_logp=sg**2) == pytest.approx(a, rel=1e-13)
    assert e(lp, mu=mu, var_logp=sg**2) == pytest.approx(a, rel=1e-13)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ((np.array([-0.5, 0.3]),), {}, "log-probabilities"),
        ((np.array([-0.5, np.nan]),), {}, "finite"),
        ((np.array([-0.5]), np.array([1])), {}, "one positional input"),
        ((), {}, "needs token_logprobs"),
        ((np.zeros(0),), {}, "no tokens"),
        ((np.array([-0.5, -1.0]),), {"mask": np.array([1, 2])}, "0/1"),
        ((np.array([-0.5, -1.0]),), {"mask": np.array([1])}, "shape"),
        ((np.array([-0.5]),), {"logits": np.zeros((1, 3)), "targets": [0]}, "not both"),
        ((), {"logits": np.zeros((2, 3)), "targets": [0, 3]}, r"\[0, 3\)"),
        ((), {"logits": np.zeros((2, 3))}, "need targets"),
        ((np.array([-0.5]),), {"targets": [0]}, "goes with logits"),
        ((np.array([-0.5]),), {"mu": [-0.4], "entropy": [0.4]}, "not both"),
    ],
)
def test_bad_inputs(args, kw, match):
    with pytest.raises(BadInputError, match=match):
        est()(*args, **kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "needs the moments"),
        ({"mu": [-0.4, -0.1], "sigma": [0.3, -0.1]}, "sigma must be >= 0"),
        ({"mu": [-0.4, 0.5], "sigma": [0.3, 0.1]}, "mu must be <= 0"),
        ({"mu": [-0.4], "sigma": [0.3]}, "shape"),
        ({"entropy": [0.4, 0.1], "var_logp": [0.3, -0.5]}, "var_logp must be >= 0"),
    ],
)
def test_bad_moments(kw, match):
    with pytest.raises(BadInputError, match=match):
        est(variant="min-k++")(np.array([-0.5, -1.0]), **kw)


def test_bad_parameters():
    for kw in (
        {"k": 0},
        {"k": 1.5},
        {"variant": "min-k+"},
        {"zero_sigma": "nan"},
        {"sigma_floor": -1},
    ):
        with pytest.raises(BadParameterError):
            est(**kw)


def test_info_cites_both_papers():
    cites = str(xent_core.info("min-k-prob", "estimator").citations)
    assert "arXiv:2310.16789" in cites and "arXiv:2404.02936" in cites


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu():
    e = est(variant="min-k++", sign="nonmember-high")
    value = e(logits=LOGITS.cuda(), targets=TARGETS.cuda())
    assert value == pytest.approx(2.5875043912, abs=5e-11)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # numpy / torch paths
@pytest.mark.parametrize("all_kept", [False, True])
def test_k_smallest_mean_matches_a_full_sort_with_ties_masks_and_single_tokens(dtype, all_kept):
    # the k smallest against numpy's full sort, int(k * n) kept tokens
    from xent_estimators._detect import k_smallest_mean

    rng = np.random.default_rng(5)
    v = -rng.integers(0, 4, size=(6, 11)).astype(float)  # many ties
    keep = rng.random((6, 11)) < 0.6
    keep[:, 0] = True
    keep[1] = False
    keep[1, 3] = True  # a single kept token
    keep[2] = True
    if all_kept:
        keep[:] = True
    for k in (0.01, 0.2, 0.5, 1.0):
        got = k_smallest_mean(torch.as_tensor(v, dtype=dtype), torch.as_tensor(keep), k).numpy()
        for b in range(6):
            row = np.sort(v[b][keep[b]])
            n = max(1, int(k * len(row)))
            tol = 1e-15 if dtype == torch.float64 else 1e-7
            assert got[b] == pytest.approx(row[:n].mean(), rel=tol, abs=tol)
