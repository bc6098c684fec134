"""Regression tests from a review of the fitters."""

from __future__ import annotations

import numpy as np

import xent_core


def _isoflop_runs_with_a_small_outlier_budget() -> dict[str, np.ndarray]:
    # four budgets of 7 runs on N* = 0.1 C^0.5, and one budget of 4 runs whose optimum is 100x
    # off: min_points=5 leaves that budget out of the fit, so it must stay out of the bootstrap.
    rng = np.random.default_rng(0)
    C, N, L = [], [], []
    for c, npts, off in [(1e18, 7, 1), (1e19, 7, 1), (1e20, 7, 1), (1e21, 7, 1), (1e22, 4, 100)]:
        n_star = 0.1 * c**0.5 * off
        for x in np.linspace(-1.0, 1.0, npts):
            C.append(c)
            N.append(n_star * np.exp(x))
            L.append(2.0 + 0.1 * x * x + rng.normal(0.0, 1e-4))
    return {"C": np.array(C), "N": np.array(N), "loss": np.array(L)}


def test_isoflop_bootstrap_uses_the_same_budgets_as_the_fit() -> None:
    data = _isoflop_runs_with_a_small_outlier_budget()
    fit = xent_core.scaling_model("isoflop", min_points=5, bootstrap=100, seed=1).fit(data)
    assert fit.metrics["n_budgets"] == 4.0
    assert abs(fit.params["a"] - 0.5) < 1e-3
    lo, hi = fit.intervals["a"]
    assert lo <= fit.params["a"] <= hi
    assert hi - lo < 0.01  # with the left-out budget the replicates reached a = 0.9
