"""intrinsic-dimension against the spec's computed values and scikit-dimension on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import qmc

import xent_core


def _halton_in_r5():
    pts = qmc.Halton(d=2, scramble=False).random(1001)[1:]
    return np.hstack([pts, np.zeros((1000, 3))])


def test_spec_halton_reference_values():
    x = _halton_in_r5()
    mle = xent_core.estimator("intrinsic-dimension", k=20)(x)
    twonn = xent_core.estimator("intrinsic-dimension", method="twonn")(x)
    assert mle == pytest.approx(2.2067047515, abs=1e-9)
    assert twonn == pytest.approx(2.0832858336, abs=1e-9)


@pytest.mark.parametrize("k", [5, 11])
def test_mle_matches_skdim_on_random_manifold(k):
    skdim = pytest.importorskip("skdim")
    rng = np.random.default_rng(k)
    z = rng.normal(size=(307, 3))
    x = np.hstack([z, np.sin(z), z[:, :1] ** 2]) + 1e-3 * rng.normal(size=(307, 7))
    ours = xent_core.estimator("intrinsic-dimension", k=k)(x)
    assert ours == pytest.approx(skdim.id.MLE().fit(x, n_neighbors=k).dimension_, rel=1e-9)


def test_twonn_matches_skdim_on_random_inputs():
    skdim = pytest.importorskip("skdim")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(411, 4)) @ rng.normal(size=(4, 9))
    ours = xent_core.estimator("intrinsic-dimension", method="twonn")(torch.from_numpy(x))
    assert ours == pytest.approx(skdim.id.TwoNN().fit(x).dimension_, rel=1e-9)


def test_duplicates_dropped_subsample_and_errors():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3))
    est = xent_core.estimator("intrinsic-dimension", k=5)
    value, d = est(np.vstack([x, x[:7]]), details=True)
    assert d["duplicates"] == 7 and value == pytest.approx(est(x), rel=1e-12)
    _, d = xent_core.estimator("intrinsic-dimension", k=5, max_samples=40)(x, details=True)
    assert d["n_used"] == 40
    with pytest.raises(xent_core.BadInputError):
        xent_core.estimator("intrinsic-dimension")(x[:15])  # k=20 needs 21 rows
    with pytest.raises(xent_core.BadInputError):
        est(np.full((30, 2), np.nan))
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("intrinsic-dimension", k=1)
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("intrinsic-dimension", method="pca")
