"""ksg-mi's one-dimensional range counts (sorted values, binary searches) equal the KD-tree's,
boundary cases included: KSG radii are exactly a neighbour's distance, and ties happen."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from xent_estimators.ksg_mi import _range_counts


@pytest.mark.parametrize("seed", (0, 1))
def test_one_dimensional_counts_equal_the_kd_tree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((801, 1))
    x[:60] = np.round(x[:60], 1)  # ties
    # radii just below a neighbour's distance (as KSG uses them) and random ones
    j = rng.integers(0, len(x), len(x))
    radius = np.nextafter(np.abs(x[:, 0] - x[j, 0]), 0.0)
    radius[::3] = rng.random(radius[::3].shape) * 0.2
    expected = cKDTree(x).query_ball_point(x, r=radius, p=math.inf, return_length=True)
    np.testing.assert_array_equal(_range_counts(x, radius), expected)
