"""label-sharpness against a brute-force double loop over pairs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import xent_core


def _brute(x, y, categorical):
    best = 0.0
    for j, k in itertools.permutations(range(len(x)), 2):
        num = float(y[j] != y[k]) if categorical else abs(y[j] - y[k])
        if num:
            best = max(best, num / np.linalg.norm(x[j] - x[k]))
    return best


@pytest.mark.parametrize("labels", ["categorical", "continuous"])
def test_all_pairs_matches_brute_force(labels):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(41, 3))
    y = rng.integers(0, 3, size=41) if labels == "categorical" else rng.normal(size=41)
    est = xent_core.estimator("label-sharpness", labels=labels, num_pairs=None)
    value, d = est(x, y, details=True)
    assert value == pytest.approx(_brute(x, y, labels == "categorical"), rel=1e-12)
    j, k = d["argmax"]
    assert j != k
    sampled = xent_core.estimator("label-sharpness", labels=labels, num_pairs=300)
    sv = sampled(torch.from_numpy(x), torch.from_numpy(y))
    assert 0 < sv <= value * (1 + 1e-12)


def test_same_labels_zero_duplicates_inf_and_errors():
    x = np.arange(12.0).reshape(6, 2)
    est = xent_core.estimator("label-sharpness", num_pairs=None)
    assert est(x, np.zeros(6)) == 0.0
    assert est(np.vstack([x, x[:1]]), np.r_[np.zeros(6), 1.0]) == math.inf
    with pytest.raises(xent_core.BadInputError):
        est(x)
    with pytest.raises(xent_core.BadInputError):
        est(x, np.zeros(5))
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("label-sharpness", labels="ordinal")


@pytest.mark.parametrize("case", ["random", "ties", "duplicate", "one_class", "chunks"])
def test_categorical_nearest_pair_path_matches_general_loop(case, monkeypatch):
    rng = np.random.default_rng(3)
    n = 1100 if case == "chunks" else 30  # > 1024 rows: the best pair may sit in a later chunk
    x = rng.normal(size=(n, 2))
    y = rng.integers(0, 3, size=n)
    if case == "ties":
        x = np.round(x * 2) / 2  # many equal distances
    if case == "duplicate":
        x[7] = x[3]
        y[7] = (y[3] + 1) % 3
    if case == "one_class":
        y[:] = 1
    est = xent_core.estimator("label-sharpness", num_pairs=None)
    fast = est(x, y, details=True)
    monkeypatch.setattr(type(est), "_nearest_other", staticmethod(lambda z, lab: None))
    general = est(x, y, details=True)
    assert fast.value == general.value
    assert fast.details["argmax"] == general.details["argmax"]
    assert fast.details["distance"] == general.details["distance"]
