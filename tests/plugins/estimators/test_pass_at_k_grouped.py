"""pass-at-k evaluates each distinct (n, c) pair once: per-problem values as the closed form."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

import xent_core


def test_per_problem_values_match_the_binomial_form_with_repeated_pairs() -> None:
    rng = np.random.default_rng(3)
    n = rng.choice([12, 20, 50], 400)
    c = rng.integers(0, 13, 400)
    est = xent_core.estimator("pass-at-k", k=[1, 5, 10])
    out = est(n, c, details=True)
    for k in (1, 5, 10):
        want = np.array([1 - comb(int(a) - int(b), k) / comb(int(a), k) for a, b in zip(n, c)])
        if k == 1:
            np.testing.assert_allclose(out.details["per_problem"], want, rtol=1e-12, atol=1e-15)
        assert out.details["pass_at"][k] == pytest.approx(want.mean(), rel=1e-12)
