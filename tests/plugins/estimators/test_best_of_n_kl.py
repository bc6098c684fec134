"""best-of-n-kl against the spec's computed values and a brute-force enumeration of n draws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import xent_core

P, R = [0.5, 0.3, 0.2], [0.0, 1.0, 2.0]


def _est(**kw):
    return xent_core.estimator("best-of-n-kl", **kw)


def test_spec_reference_values():
    kl, d = _est(n=2)(P, R, details=True)
    assert kl == pytest.approx(0.1406384674, abs=1e-10)
    np.testing.assert_allclose(d["policy"], [0.25, 0.39, 0.36], atol=1e-14)
    assert d["bound"] == pytest.approx(0.1931471806, abs=1e-10)
    assert d["reward"] == pytest.approx(1.11, abs=1e-12)
    kl, d = _est(n=4, lam=1.0)(P, R, details=True)
    assert kl == pytest.approx(0.5597505604, abs=1e-10) and kl <= d["bound"]
    np.testing.assert_allclose(d["policy"], [0.0625, 0.3471, 0.5904], atol=1e-14)
    assert d["reward"] == pytest.approx(1.5279, abs=1e-12)
    phi = [0.1790000206, 0.2919435019, 0.5290564775]
    np.testing.assert_allclose(d["tilted_policy"], phi, atol=1e-10)
    assert d["tilted_kl"] == pytest.approx(0.3228342793, abs=1e-10)
    assert d["tilted_reward"] == pytest.approx(1.3500564569, abs=1e-10)
    _, d = _est(n=4, kl_budget=0.3228342793, from_logprobs=True)(np.log(P), R, details=True)
    assert d["lam"] == pytest.approx(1.0, abs=1e-8)


def _brute(p, r, n):
    """Enumerate all n-tuples of draws; keep the first sample with the largest reward."""
    pi, win = np.zeros(len(p)), 0.0
    for draw in itertools.product(range(len(p)), repeat=n):
        w = np.prod([p[i] for i in draw])
        best = max(draw, key=lambda i: r[i])  # first of the maxima
        pi[best] += w
    for i, j in itertools.product(range(len(p)), repeat=2):
        win += pi[i] * p[j] * (1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0)
    kl = sum(q * np.log(q / pp) for q, pp in zip(pi, p) if q > 0)
    return pi, kl, win


@pytest.mark.parametrize("n", [1, 3, 4])
def test_random_outcomes_with_ties_match_enumeration(n):
    rng = np.random.default_rng(n)
    p = rng.dirichlet(np.ones(5))
    r = np.array([0.3, 1.0, 0.3, -2.0, 1.0])  # two tie groups
    pi, kl, win = _brute(p, r, n)
    value, d = _est(n=n)(torch.from_numpy(p), torch.from_numpy(r), details=True)
    np.testing.assert_allclose(d["policy"], pi, atol=1e-14)
    assert value == pytest.approx(kl, abs=1e-13)
    assert d["win_rate"] == pytest.approx(win, abs=1e-13)
    assert value <= d["bound"] + 1e-15


def test_bad_inputs():
    with pytest.raises(xent_core.BadInputError, match="sum to 1"):
        _est()([0.5, 0.6], [0, 1])
    with pytest.raises(xent_core.BadInputError):
        _est()(P)
    with pytest.raises(xent_core.BadInputError):
        _est()(P, R[:2])
    with pytest.raises(xent_core.BadInputError, match="kl_budget"):
        _est(kl_budget=5.0)(P, R)  # -log 0.2 = 1.609 is the largest reachable KL
    with pytest.raises(xent_core.BadParameterError):
        _est(n=0)
    with pytest.raises(xent_core.BadParameterError):
        _est(lam=1.0, kl_budget=0.1)


def _kl_np(q, n):
    """Exact best-of-n KL from group masses in increasing reward order (numpy float64)."""
    q = np.asarray(q, dtype=np.float64)
    cdf = np.cumsum(q)
    pi = cdf**n - (cdf - q) ** n
    return float(np.sum(pi * np.log(pi / q)))


def _se_np(q, n, m, h=1e-6):
    """Delta-method standard error with a central finite-difference gradient."""
    q = np.asarray(q, dtype=np.float64)
    g = np.array([(_kl_np(q + h * e, n) - _kl_np(q - h * e, n)) / (2 * h) for e in np.eye(len(q))])
    return float(np.sqrt((np.sum(q * g * g) - np.sum(q * g) ** 2) / m))


def test_monte_carlo_from_sampled_rewards_matches_the_exact_value():
    est = _est(n=4, from_samples=True)
    exact = 0.5597505604  # the spec's value for p = [0.5, 0.3, 0.2], r = [0, 1, 2], n = 4
    m = 20000
    se = _se_np(P, 4, m)
    rng = np.random.default_rng(2024)
    value, d = est(rng.choice(R, p=P, size=m), details=True)
    assert abs(value - exact) <= 4 * se  # seeded sample; 4 standard errors
    assert d["standard_error"] == pytest.approx(se, rel=0.05)  # estimated at q_hat, not p
    assert d["samples"] == m and d["rewards"].tolist() == R
    # coverage: over repeated samples the error is within 1.96 SE about 95% of the time
    hits = 0
    for seed in range(300):
        v, dd = est(np.random.default_rng(seed).choice(R, p=P, size=2000), details=True)
        hits += abs(v - exact) <= 1.96 * dd["standard_error"]
    assert 0.90 <= hits / 300 <= 0.99


def test_monte_carlo_reads_only_rewards():
    with pytest.raises(xent_core.BadInputError, match="one input"):
        _est(from_samples=True)(R, P)
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        _est(from_samples=True)([0.0, float("nan")])
    with pytest.raises(xent_core.BadParameterError):
        _est(from_samples=True, from_logprobs=True)
    # a single reward value: best-of-n is p itself
    assert _est(n=5, from_samples=True)([1.0] * 7) == pytest.approx(0.0, abs=1e-15)
