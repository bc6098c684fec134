"""pass-at-k with one n for every problem: the table over c against exact binomials."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
from xent_estimators.pass_at_k import pass_at_k_table

import xent_core


@pytest.mark.parametrize(("n", "k"), [(1, 1), (6, 1), (6, 6), (12, 4), (300, 10), (2000, 50)])
def test_table_matches_exact_binomials(n: int, k: int) -> None:
    table = pass_at_k_table(n, k)
    exact = np.array([float(1 - Fraction(comb(n - c, k), comb(n, k))) for c in range(n + 1)])
    np.testing.assert_allclose(table, exact, rtol=4e-15, atol=0)


def test_constant_n_path_agrees_with_the_per_pair_path() -> None:
    rng = np.random.default_rng(0)
    c = rng.integers(0, 41, 500)
    est = xent_core.estimator("pass-at-k", k=[1, 5, 40])
    _, table = est(40, c, details=True)  # one n: the table
    n = np.full(501, 40)
    n[-1] = 41  # two values of n: the per-pair path
    _, pairs = est(n, np.append(c, 0), details=True)
    np.testing.assert_allclose(table["per_problem"], pairs["per_problem"][:-1], rtol=1e-14)
    assert table["pass_at"][40] == np.mean(c > 0)  # k = n: any correct sample is drawn
