"""neural-collapse against the spec's computed values and a float64 formula with explicit Sigma_W."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xent_core

ETF_VS_IDENTITY = 0.6058108931  # || I/sqrt(3) - (I - J/3)/sqrt(2) ||_F


def _spec_features():
    x = np.array(
        [[1, 0, 0, 0], [1.2, 0.1, 0, 0], [0.8, -0.1, 0, 0],
         [0, 1, 0, 0], [0, 1.1, 0.2, 0], [0, 0.9, -0.2, 0],
         [0, 0, 1, 0], [0, 0, 1.3, 0], [0, 0, 0.7, 0]], dtype=float,
    )  # fmt: skip
    return x, np.repeat([0, 1, 2], 3)


def _naive(h, y, w=None, rtol=1e-10):
    k = int(y.max()) + 1
    means = np.stack([h[y == c].mean(0) for c in range(k)])
    mu_g = h.mean(0)
    dev = h - means[y]
    sw = dev.T @ dev / len(h)
    mc = means - mu_g
    sb = mc.T @ mc / k
    nc1 = np.trace(sw @ np.linalg.pinv(sb, rcond=rtol, hermitian=True)) / k
    out = {"nc1": nc1}
    if w is not None:
        dist = ((h[:, None, :] - means[None]) ** 2).sum(-1)
        out["nc4"] = np.mean((h @ w.T).argmax(1) != dist.argmin(1))
    return out


def test_spec_reference_values():
    x, y = _spec_features()
    w = np.hstack([np.eye(3), np.zeros((3, 1))])
    _, d = xent_core.estimator("neural-collapse")(x, y, classifier=w, details=True)
    assert d["nc1"] == pytest.approx(0.0222222222, abs=1e-10)
    assert d["nc2_weights"] == pytest.approx(ETF_VS_IDENTITY, abs=1e-10)
    assert d["nc3"] == pytest.approx(0.0, abs=1e-12)
    assert d["nc3_dual"] == pytest.approx(ETF_VS_IDENTITY, abs=1e-10)
    assert d["nc4"] == 0.0
    _, d = xent_core.estimator("neural-collapse", geometry="orthogonal")(
        x, y, classifier=w, details=True
    )
    assert d["nc2_weights"] == pytest.approx(0.0, abs=1e-12)


def test_simplex_etf_classifier_has_zero_nc2():
    k = 5
    w = np.sqrt(k / (k - 1)) * (np.eye(k) - 1.0 / k)
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(k), 4)
    x = w[y] + 0.01 * rng.normal(size=(20, k))
    _, d = xent_core.estimator("neural-collapse")(x, y, classifier=w, details=True)
    assert d["nc2_weights"] == pytest.approx(0.0, abs=1e-14)
    assert d["weights"]["equinorm"] == pytest.approx(0.0, abs=1e-14)
    assert d["weights"]["cos_shift"] == pytest.approx(0.0, abs=1e-14)


def test_random_imbalanced_matches_explicit_formula():
    rng = np.random.default_rng(11)
    k, dim = 4, 7
    y = np.concatenate([np.full(c, i) for i, c in enumerate([3, 9, 17, 5])])
    x = rng.normal(size=(y.size, dim)) + 2 * rng.normal(size=(k, dim))[y]
    w = rng.normal(size=(k, dim))
    value, d = xent_core.estimator("neural-collapse")(x, y, classifier=w, details=True)
    ref = _naive(x, y, w)
    assert value == pytest.approx(ref["nc1"], rel=1e-10)
    assert d["nc4"] == pytest.approx(ref["nc4"])
    assert list(d["class_counts"]) == [3, 9, 17, 5]
    # a deep linear head is multiplied out
    w1, w2 = rng.normal(size=(5, dim)), rng.normal(size=(k, 5))
    _, d2 = xent_core.estimator("neural-collapse")(x, y, classifier=[w1, w2], details=True)
    _, d3 = xent_core.estimator("neural-collapse")(x, y, classifier=w2 @ w1, details=True)
    assert d2["nc3"] == pytest.approx(d3["nc3"], rel=1e-12)
    tv = xent_core.estimator("neural-collapse")(torch.from_numpy(x), torch.from_numpy(y))
    assert tv == pytest.approx(value, rel=1e-10)


def test_bad_inputs():
    est = xent_core.estimator("neural-collapse")
    x, y = _spec_features()
    with pytest.raises(xent_core.BadInputError):
        est(x)
    with pytest.raises(xent_core.BadInputError):
        est(x, y[:-1])
    with pytest.raises(xent_core.BadInputError, match="no samples"):
        est(x, np.where(y == 1, 2, y))
    with pytest.raises(xent_core.BadInputError):
        est(x, y, classifier=np.ones((3, 5)))
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("neural-collapse", geometry="simplex")
