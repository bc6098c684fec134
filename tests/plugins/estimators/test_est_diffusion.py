"""Diffusion spectral entropy (dse) and mutual information (dsmi)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError


def est(name, **params):
    return xent_core.estimator(name, **params)


def naive_dse(x: np.ndarray, sigma: float, t: float, anisotropy: float = 0.0) -> float:
    """The definition, straight: pairwise distances, P = D^-1 K, general eigensolver, bits."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma**2))
    if anisotropy:
        q = k.sum(1)
        k = k / np.outer(q**anisotropy, q**anisotropy)
    p = k / k.sum(1, keepdims=True)
    lam = np.abs(np.linalg.eigvals(p).real) ** t
    a = lam / lam.sum()
    a = a[a > 0]
    return float(-(a * np.log2(a)).sum())


def test_far_apart_points_give_log2_n_bits():
    rng = np.random.default_rng(61)
    for n in (2, 17, 64):
        x = rng.normal(size=(n, 3)) * 1e3
        assert est("dse", sigma=1.0)(x) == pytest.approx(math.log2(n), abs=1e-9)
        assert est("dse", sigma=1.0, t=3)(x) == pytest.approx(math.log2(n), abs=1e-9)
        assert est("dse", sigma=1.0, anisotropy=1.0)(x) == pytest.approx(math.log2(n), abs=1e-9)
    value, details = est("dse", sigma=1.0, base=math.e)(x, details=True)
    assert value == pytest.approx(math.log(64), abs=1e-9)
    assert details["max_value"] == pytest.approx(math.log(64))


def test_identical_points_give_zero():
    x = np.tile(np.random.default_rng(62).normal(size=(1, 5)), (25, 1))
    assert est("dse")(x) == pytest.approx(0.0, abs=1e-9)
    assert est("dse", anisotropy=0.5, t=2)(x) == pytest.approx(0.0, abs=1e-9)
    assert est("dse")(x[:1]) == 0.0


def test_dse_decreases_in_t():
    rng = np.random.default_rng(63)
    x = rng.normal(size=(120, 4))
    values = [est("dse", sigma=1.0, t=t)(x) for t in (1, 2, 3, 5, 8, 20)]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert 0 < values[-1] < values[0] < math.log2(120)


def test_dse_matches_the_naive_definition():
    rng = np.random.default_rng(64)
    x = rng.normal(size=(97, 6)) + 5.0
    for sigma, t, a in ((1.0, 1, 0.0), (2.5, 3, 0.0), (1.5, 2, 1.0), (0.7, 1.5, 0.5)):
        ours = est("dse", sigma=sigma, t=t, anisotropy=a)(x)
        assert ours == pytest.approx(naive_dse(x, sigma, t, a), rel=1e-9)


def test_dse_float32_mode_and_torch_inputs():
    rng = np.random.default_rng(65)
    x = rng.normal(size=(150, 8))
    exact = est("dse", sigma=2.0)(x)
    fast = est("dse", sigma=2.0, precision="float32")(x)
    assert fast == pytest.approx(exact, rel=1e-4)
    assert est("dse", sigma=2.0)(torch.from_numpy(x)) == pytest.approx(exact, rel=1e-12)


def test_dse_subsampling_and_details():
    rng = np.random.default_rng(66)
    x = rng.normal(size=(300, 3))
    value, details = est("dse", sigma=1.0, max_samples=100, seed=3)(x, details=True)
    assert details["n"] == 100 and details["n_total"] == 300
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(3))[:100].numpy()
    assert value == pytest.approx(est("dse", sigma=1.0)(x[idx]), rel=1e-12)
    assert details["eigenvalues"][0] == pytest.approx(
        1.0, abs=1e-10
    )  # top of the diffusion operator
    assert details["alpha"].sum() == pytest.approx(1.0)


def test_dse_bad_inputs():
    with pytest.raises(BadParameterError, match="sigma"):
        est("dse", sigma=0)
    with pytest.raises(BadParameterError, match="diffusion time"):
        est("dse", t=-1)
    with pytest.raises(BadParameterError, match="precision"):
        est("dse", precision="float16")
    with pytest.raises(BadInputError, match="shape"):
        est("dse")(np.ones(5))
    with pytest.raises(BadInputError, match="NaN"):
        est("dse")(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(BadInputError, match="one input"):
        est("dse")(np.ones((4, 2)), np.ones(4))


# ------------------------------------------------------------------ dsmi
def _clusters(rng, n_per, centers, scale=0.3):
    x = np.vstack([rng.normal(size=(n_per, 2)) * scale + c for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per)
    return x, y


def test_dsmi_unmatched_equals_entropy_minus_conditional_entropy():
    rng = np.random.default_rng(71)
    x, y = _clusters(rng, 40, [(0, 0), (3, 0), (0, 3)])
    y = np.array(y)
    dse = est("dse", sigma=1.0)
    ref = dse(x) - sum((y == c).mean() * dse(x[y == c]) for c in range(3))
    got = est("dsmi", sigma=1.0, matched=False)(x, y)
    assert got == pytest.approx(ref, rel=1e-12)


def test_dsmi_matched_is_larger_for_informative_labels():
    rng = np.random.default_rng(72)
    x, y = _clusters(rng, 50, [(0, 0), (6, 0), (0, 6), (6, 6)])
    informative = est("dsmi", sigma=1.0, repeats=3)(x, y)
    shuffled = est("dsmi", sigma=1.0, repeats=3)(x, rng.permutation(y))
    assert informative > 1.0  # about log2(4) = 2 bits of cluster identity, minus geometry
    assert abs(shuffled) < 0.35 * informative
    value, details = est("dsmi", sigma=1.0)(x, y, details=True)
    assert details["groups"] == 4 and details["reference"] == "labels"
    assert value == pytest.approx(details["entropy_x"] - details["conditional_entropy"])
    # deterministic for a seed
    assert est("dsmi", sigma=1.0, seed=5)(x, y) == est("dsmi", sigma=1.0, seed=5)(x, y)


def test_dsmi_scalar_and_vector_references():
    rng = np.random.default_rng(73)
    x, y = _clusters(rng, 40, [(0, 0), (5, 5)])
    scalar = x[:, 0] + 0.01 * rng.normal(size=len(x))  # continuous, tied to the clusters
    value, details = est("dsmi", sigma=1.0, n_clusters=2)(x, scalar, details=True)
    assert details["reference"] == "scalar" and details["group_sizes"] == [40, 40]
    assert value > 0.5
    vec = x + 0.01 * rng.normal(size=x.shape)
    value, details = est("dsmi", sigma=1.0, n_clusters=2)(x, vec, details=True)
    assert details["reference"] == "vector" and sorted(details["group_sizes"]) == [40, 40]
    assert value > 0.5
    # labels read from a float file are still labels
    _, details = est("dsmi", sigma=1.0)(x, y.astype(float), details=True)
    assert details["reference"] == "labels"


def test_dsmi_bad_inputs():
    x = np.random.default_rng(74).normal(size=(30, 2))
    with pytest.raises(BadInputError, match="reference"):
        est("dsmi")(x)
    with pytest.raises(BadInputError, match="one entry per sample"):
        est("dsmi")(x, np.zeros(29, dtype=int))
    with pytest.raises(BadInputError, match="distinct labels"):
        est("dsmi")(x, np.arange(30))
    with pytest.raises(BadInputError, match="NaN"):
        est("dsmi", y_kind="scalar")(x, np.full(30, np.nan))
    with pytest.raises(BadParameterError, match="y_kind"):
        est("dsmi", y_kind="ordinal")
