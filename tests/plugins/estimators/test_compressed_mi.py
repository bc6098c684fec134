"""compressed-mi vs the Gaussian closed form, KSG on the uncompressed variables, and the
information lost by too-low a dimension or by noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xent_core
from xent_core import BadInputError, BadParameterError


def gaussian_pair(rho: float, d: int, n: int, seed: int, big: int = 50):
    """(U, V) with per-coordinate correlation rho, and (X, Y): both injected into R^big."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, d))
    v = rho * u + math.sqrt(1 - rho**2) * rng.normal(size=(n, d))
    qx, _ = np.linalg.qr(rng.normal(size=(big, d)))  # orthonormal columns: isometric injections
    qy, _ = np.linalg.qr(rng.normal(size=(big, d)))
    return u, v, u @ qx.T, v @ qy.T


def closed_form(rho: float, d: int) -> float:
    return -d / 2 * math.log(1 - rho**2)


def test_spec_closed_form_values():
    assert closed_form(0.9, 1) == pytest.approx(0.8303656034, abs=1e-10)
    assert closed_form(0.5, 8) == pytest.approx(1.1507282899, abs=1e-10)


def test_pca_recovers_a_one_dimensional_pair_from_fifty_dimensions():
    u, v, x, y = gaussian_pair(0.9, 1, 2000, seed=11)
    value, info = xent_core.estimator("compressed-mi", dim_x=1, dim_y=1)(x, y, details=True)
    direct = xent_core.estimator("ksg-mi")(u, v)
    assert value == pytest.approx(direct, rel=1e-9)  # PCA to 1-D is exact up to sign
    assert value == pytest.approx(closed_form(0.9, 1), abs=0.05)
    assert info["variance_kept_x"] == pytest.approx(1.0) and info["dim_x"] == 1


@pytest.mark.slow
def test_pca_to_eight_dimensions_matches_ksg_on_the_original_pair():
    u, v, x, y = gaussian_pair(0.5, 8, 2000, seed=12)
    value = xent_core.estimator("compressed-mi", dim_x=8, dim_y=8)(x, y)
    direct = xent_core.estimator("ksg-mi")(u, v)
    # PCA recovers the 8-D subspaces exactly, up to a rotation that KSG's max norm notices:
    # the two agree within KSG's own error, which here is a large downward bias (16-D joint
    # space, n = 2000) against the closed form 1.1507282899
    assert value == pytest.approx(direct, abs=0.05)
    assert 0.4 < value < closed_form(0.5, 8)
    lower = xent_core.estimator("compressed-mi", dim_x=4, dim_y=4)(x, y)
    assert lower < value - 0.15  # too low a dimension loses information: a lower bound


def test_kl_entropies_agree_in_one_dimension():
    _, _, x, y = gaussian_pair(0.9, 1, 2000, seed=13)
    kl = xent_core.estimator("compressed-mi", dim_x=1, dim_y=1, mi_estimator="kl")(x, y)
    assert kl == pytest.approx(closed_form(0.9, 1), abs=0.06)


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_relative_noise_matches_the_blurred_closed_form(sigma):
    _, _, x, y = gaussian_pair(0.9, 1, 2000, seed=14)
    value = xent_core.estimator("compressed-mi", dim_x=1, dim_y=1, noise_std=sigma, seed=99)(x, y)
    blurred = 0.9 / (1 + sigma**2)  # both variables blurred with noise of sigma * their std
    assert value == pytest.approx(closed_form(blurred, 1), abs=0.05)


def test_labels_give_entropy_minus_conditional_entropy():
    rng = np.random.default_rng(15)
    n = 3000
    labels = rng.integers(0, 2, size=n)
    signal = rng.normal(size=n) + 3.0 * labels  # mixture of N(0,1) and N(3,1)
    x = (
        np.column_stack([signal, 1e-3 * rng.normal(size=(n, 9))])
        @ np.linalg.qr(rng.normal(size=(10, 10)))[0]
    )
    value = xent_core.estimator("compressed-mi", dim_x=1)(x, labels)
    # I = h(mixture) - h(N(0,1)), the mixture entropy by quadrature
    grid = np.linspace(-10, 13, 200001)
    dens = 0.5 * (np.exp(-(grid**2) / 2) + np.exp(-((grid - 3) ** 2) / 2)) / math.sqrt(2 * math.pi)
    h_mix = float(-np.sum(dens * np.log(dens)) * (grid[1] - grid[0]))
    truth = h_mix - 0.5 * math.log(2 * math.pi * math.e)
    assert value == pytest.approx(truth, abs=0.05)


def test_callable_compressor():
    _, _, x, y = gaussian_pair(0.9, 1, 500, seed=16)
    est = xent_core.estimator("compressed-mi", compressor=lambda z: z[:, :1] + z[:, 1:2])
    ref = xent_core.estimator("ksg-mi")(x[:, :1] + x[:, 1:2], y[:, :1] + y[:, 1:2])
    assert est(x, y) == pytest.approx(ref, rel=1e-12)


def test_bad_inputs_and_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    with pytest.raises(BadInputError):
        xent_core.estimator("compressed-mi")(x, rng.normal(size=(19, 2)))
    with pytest.raises(BadInputError):
        xent_core.estimator("compressed-mi")(x)
    with pytest.raises(BadInputError):  # a class with too few samples
        xent_core.estimator("compressed-mi")(x, np.array([0] * 18 + [1, 1]))
    with pytest.raises(BadInputError):
        xent_core.estimator("compressed-mi", compressor=lambda z: z[:5])(x, x)
    for params in ({"compressor": "ae"}, {"dim_x": 0}, {"mi_estimator": "mine"}, {"k": 0},
                   {"noise_std": -1.0}):  # fmt: skip
        with pytest.raises(BadParameterError):
            xent_core.estimator("compressed-mi", **params)
