"""The log-space Huber engine: objective and gradients against independent references, the
batched optimiser against scipy, the fast search against the exhaustive per-start search."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import huber as scipy_huber
from xent_fitters.chinchilla import CHINCHILLA_GRID, ChinchillaLaw
from xent_fitters.data_constrained import DataConstrainedLaw
from xent_fitters.datasets import chinchilla_data
from xent_fitters.engine import (
    bootstrap_counts,
    exhaustive_search,
    global_search,
    huber,
    minimize_batched,
    polish,
    single_thread_blas,
)
from xent_fitters.kaplan import KaplanLaw
from xent_fitters.law import make_grid
from xent_fitters.nmt_bivariate import NMTBivariateLaw
from xent_fitters.power_law import PowerLaw

from xent_core import FitError


@pytest.fixture(scope="module")
def chin():
    cols = chinchilla_data()
    law = ChinchillaLaw()
    return law, cols, law.problem(cols)


def _random_cols(rng, n):
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
    U = D * np.where(rng.random(n) < 0.5, 1.0, np.exp(-rng.uniform(0, 3, n)))
    loss = 1.8 + 400 * N**-0.34 + 2000 * D**-0.37
    loss = loss * np.exp(rng.normal(0, 0.01, n))
    return {"N": N, "D": D, "U": U, "loss": loss, "Ne": N, "Nd": D / 100}


def test_huber_matches_scipy():
    rng = np.random.default_rng(101)
    r = rng.normal(0, 3e-3, 257)
    np.testing.assert_allclose(huber(r, 1e-3), scipy_huber(1e-3, r), rtol=1e-14, atol=0)


def test_objective_matches_direct_formula(chin):
    """LSE parametrisation + summed Huber vs log(E + A N^-a + B D^-b) computed directly."""
    _, cols, problem = chin
    rng = np.random.default_rng(102)
    theta = np.column_stack(
        [
            rng.uniform(3, 9, 7),
            rng.uniform(3, 9, 7),
            rng.uniform(-0.5, 1, 7),
            rng.uniform(0.1, 0.6, 7),
            rng.uniform(0.1, 0.6, 7),
        ]
    )
    f, _ = problem.value_and_grad(theta)
    for row, fv in zip(theta, f):
        a, b, e, al, be = row
        pred = np.exp(e) + np.exp(a) * cols["N"] ** -al + np.exp(b) * cols["D"] ** -be
        ref = scipy_huber(1e-3, np.log(pred) - np.log(cols["loss"])).sum()
        assert fv == pytest.approx(ref, rel=1e-10)


def _fd_check(problem, theta, weights=None, eps=1e-6):
    _, g = problem.value_and_grad(theta, weights)
    for j in range(problem.k):
        step = np.zeros(problem.k)
        step[j] = eps
        fp, _ = problem.value_and_grad(theta + step, weights)
        fm, _ = problem.value_and_grad(theta - step, weights)
        np.testing.assert_allclose(g[:, j], (fp - fm) / (2 * eps), rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize(
    "law_name", ["chinchilla", "power-law", "kaplan", "nmt", "data-constrained"]
)
def test_analytic_gradient_matches_finite_differences(law_name):
    rng = np.random.default_rng(103)
    cols = _random_cols(rng, 53)
    # delta large enough that residuals stay in the quadratic part (smooth for differences)
    if law_name == "chinchilla":
        law = ChinchillaLaw(delta=10.0)
        problem = law.problem(cols)
        theta = np.column_stack(
            [
                rng.uniform(4, 8, 4),
                rng.uniform(5, 9, 4),
                rng.uniform(0, 1, 4),
                rng.uniform(0.2, 0.5, 4),
                rng.uniform(0.2, 0.5, 4),
            ]
        )
    elif law_name == "power-law":
        law = PowerLaw(delta=10.0)
        problem = law.problem(cols)
        theta = np.column_stack(
            [rng.uniform(4, 8, 4), rng.uniform(0, 1, 4), rng.uniform(0.2, 0.5, 4)]
        )
    elif law_name == "kaplan":
        law = KaplanLaw(delta=10.0)
        problem = law.problem(cols)
        theta = np.column_stack(
            [
                rng.uniform(28, 32, 4),
                rng.uniform(28, 32, 4),
                rng.uniform(0.05, 0.1, 4),
                rng.uniform(0.08, 0.12, 4),
            ]
        )
    elif law_name == "nmt":
        law = NMTBivariateLaw(delta=10.0)
        law._bars = (1e9, 1e8)
        problem = law.problem(cols)
        theta = np.column_stack(
            [
                rng.uniform(-1, 0, 4),
                rng.uniform(0.2, 0.5, 4),
                rng.uniform(0.2, 0.5, 4),
                rng.uniform(0, 0.5, 4),
            ]
        )
    elif law_name == "data-constrained":
        law = DataConstrainedLaw(delta=10.0)
        base = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}
        problem = law._stage2_problem(base, cols)
        theta = np.column_stack([rng.uniform(0, 3, 4), rng.uniform(1, 4, 4)])
    else:  # all seven parameters, including U_N's dependence on the base law
        law = DataConstrainedLaw(delta=10.0)
        problem = law.problem(cols)
        theta = np.column_stack(
            [
                rng.uniform(5, 7, 4),
                rng.uniform(6, 8, 4),
                rng.uniform(0.4, 0.8, 4),
                rng.uniform(0.3, 0.4, 4),
                rng.uniform(0.3, 0.4, 4),
                rng.uniform(0, 3, 4),
                rng.uniform(1, 4, 4),
            ]
        )
        lp, _ = problem.log_predict(theta)
        assert np.isfinite(lp).all()
    weights = rng.integers(0, 3, len(cols["N"])).astype(float)
    _fd_check(problem, theta)
    _fd_check(problem, theta, weights)


def test_bootstrap_counts_equal_resampled_data(chin):
    """A weighted objective with multinomial counts equals the objective on resampled rows."""
    law, cols, problem = chin
    rng = np.random.default_rng(104)
    w = bootstrap_counts(problem.n, 1, rng)[0]
    rows = np.repeat(np.arange(problem.n), w.astype(int))
    resampled = law.problem({k: v[rows] for k, v in cols.items()})
    theta = np.array([[6.0, 7.5, 0.6, 0.34, 0.37]])
    fw, gw = problem.value_and_grad(theta, w)
    fr, gr = resampled.value_and_grad(theta)
    np.testing.assert_allclose(fw, fr, rtol=1e-12)
    np.testing.assert_allclose(gw, gr, rtol=1e-10)


def test_batched_minimiser_matches_scipy_per_start(chin):
    """From each start, the batched L-BFGS reaches the optimum scipy's L-BFGS-B reaches."""
    from scipy.optimize import minimize

    _, _, problem = chin
    starts = np.array(
        [[5.0, 10.0, 0.5, 0.5, 0.5], [10.0, 5.0, 0.0, 0.5, 0.5], [0.0, 5.0, 0.5, 0.5, 0.0]]
    )
    batch = minimize_batched(problem, starts, maxiter=2000)
    assert batch.converged.all()

    def fun(th):
        f, g = problem.value_and_grad(th[None, :])
        return f[0], g[0]

    refs = []
    for i, s in enumerate(starts):
        with single_thread_blas():  # tiny BLAS calls are slow with threads on a busy machine
            ref = minimize(
                fun, s, jac=True, method="L-BFGS-B", options={"ftol": 1e-12, "gtol": 1e-9}
            )
        assert batch.f[i] == pytest.approx(ref.fun, rel=1e-7)
        refs.append(ref)
    # the first start reaches the global optimum, which is well determined (the others stop in
    # flat valleys where a term vanishes): same point, and polishing cannot improve it
    np.testing.assert_allclose(batch.theta[0], refs[0].x, rtol=1e-4, atol=1e-5)
    _, f_pol, _, _ = polish(problem, batch.theta[0])
    assert f_pol == pytest.approx(batch.f[0], rel=1e-9)


def test_fast_search_equals_exhaustive_on_reduced_grid(chin):
    """The halving search returns the optimum of scipy L-BFGS-B run from every start."""
    _, _, problem = chin
    full = make_grid(CHINCHILLA_GRID, ("a", "b", "e", "alpha", "beta"))
    rng = np.random.default_rng(7)
    grid = full[rng.choice(len(full), 24, replace=False)]
    fast = global_search(problem, grid, min_survivors=4)
    theta_ref, f_ref = exhaustive_search(problem, grid)
    # scipy's default tolerances stop within ~1e-9 of the optimum; the engine polishes tighter
    assert fast.f <= f_ref * (1 + 1e-12)
    assert fast.f == pytest.approx(f_ref, rel=1e-7)
    np.testing.assert_allclose(fast.theta, theta_ref, rtol=2e-4, atol=1e-5)
    full_strategy = global_search(problem, grid, strategy="full")
    assert full_strategy.f == pytest.approx(fast.f, rel=1e-10)


def test_search_rejects_bad_grid(chin):
    _, _, problem = chin
    with pytest.raises(FitError, match="5 parameters"):
        global_search(problem, np.zeros((3, 4)))
    with pytest.raises(FitError, match="not finite"):
        global_search(problem, np.full((2, 5), [1e4, 1e4, 0.0, -1e3, 0.0]) * 0 + np.nan)
