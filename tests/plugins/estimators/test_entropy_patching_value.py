"""entropy-patching's threshold value without details equals the value of the full start mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xent_core
from xent_core import BadInputError


@pytest.mark.parametrize("next_token", [False, True])
@pytest.mark.parametrize("length", [1, 2, 3, 17])
def test_value_alone_equals_the_value_with_details(next_token: bool, length: int) -> None:
    """Length 1 without the next token is one patch per sequence (it raised an IndexError)."""
    rng = np.random.default_rng(length)
    h = rng.integers(0, 4, (5, length)) * 0.5  # many entries equal to the threshold
    est = xent_core.estimator(
        "entropy-patching", mode="threshold", threshold=1.0, include_next_token=next_token
    )
    value = est(h)
    with_details, info = est(h, details=True)
    assert value == with_details
    assert value == (h.size + 5 * next_token) / int(info["num_patches"].sum())


@pytest.mark.parametrize(("bad", "message"), [(math.nan, "NaN"), (math.inf, "inf"), (-0.5, ">= 0")])
def test_bad_entropies_are_refused_on_the_value_path(bad: float, message: str) -> None:
    h = np.ones((2, 6))
    h[1, 3] = bad
    est = xent_core.estimator("entropy-patching", mode="threshold", threshold=1.0)
    with pytest.raises(BadInputError, match=message):
        est(h)
