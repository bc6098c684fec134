"""best-of-n-kl: reward groups from one sort, and the KL summed over groups, against the
element-wise definitions (torch.unique, sum_i pi_i log(pi_i / p_i))."""

from __future__ import annotations

import math

import numpy as np
import torch
from xent_estimators.best_of_n_kl import _reward_groups

import xent_core


def test_groups_match_torch_unique() -> None:
    gen = torch.Generator().manual_seed(0)
    for r in (
        torch.randint(0, 5, (300,), generator=gen).double(),  # many ties
        torch.randn(300, generator=gen, dtype=torch.float64),  # all distinct
        torch.tensor([2.0]),
        torch.tensor([1.0, -0.0, 0.0, -1.0]),  # -0.0 == 0.0: one group
    ):
        group, count = _reward_groups(r)
        _, want = torch.unique(r, sorted=True, return_inverse=True)
        assert torch.equal(group, want) and count == int(want.max()) + 1


def test_group_kl_equals_the_elementwise_kl() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(400) ** 3
    p[::7] = 0.0  # outcomes of probability 0
    p /= p.sum()
    r = rng.integers(0, 30, 400).astype(np.float64)
    est = xent_core.estimator("best-of-n-kl", n=5)
    value, info = est(p, r, details=True)
    pi = np.asarray(info["policy"])
    keep = pi > 0
    elementwise = float(np.sum(pi[keep] * np.log(pi[keep] / p[keep])))
    assert math.isclose(value, elementwise, rel_tol=1e-13)
    assert est(p, r) == value  # the value without details is the same number
