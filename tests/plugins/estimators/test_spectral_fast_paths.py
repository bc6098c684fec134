"""The fast paths of the spectral estimators' shared helpers agree with their general paths:
unit rows without the power-of-two rescaling, numpy's Gram product and eigensolver against
torch's (autograd path), and alpha-req's spectrum scaled after the eigensolve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from xent_estimators import _common as c

import xent_core


def _rescaled_unit_rows(x: torch.Tensor) -> torch.Tensor:
    """The general path of preprocess_rows: each row divided by a power of two first."""
    peak = x.abs().amax(dim=1, keepdim=True)
    _, e = torch.frexp(peak)
    z = torch.ldexp(x, -e.to(x.dtype))
    return z / z.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("scale", [1.0, 1e-100, 1e100, 1e-130])
def test_unit_rows_fast_path_equals_the_rescaled_path(scale):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(50, 7)) * scale)
    x[3] = x[5]  # duplicates
    fast = c.preprocess_rows(x, center=False, normalize_rows=True)
    assert torch.equal(fast, _rescaled_unit_rows(x))  # bit for bit


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_unit_rows_outside_the_safe_range_take_the_rescaled_path(scale):
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(20, 5)) * scale)
    assert not c._squares_safe(x.norm(dim=1, keepdim=True))
    z = c.preprocess_rows(x, center=False, normalize_rows=True)
    assert torch.equal(z, _rescaled_unit_rows(x))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(20, dtype=torch.float64))


def test_zero_row_still_raises():
    x = torch.ones(4, 3, dtype=torch.float64)
    x[2] = 0
    with pytest.raises(xent_core.BadInputError, match="zero"):
        c.preprocess_rows(x, center=False, normalize_rows=True)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40), (1, 3)])
def test_numpy_gram_and_eigvalsh_match_torch(shape):
    x = torch.from_numpy(np.random.default_rng(2).normal(size=shape))
    for rows in (None, True, False):
        g = c.gram(x, rows)
        ref = c.gram(x.clone().requires_grad_(True), rows).detach()  # torch's matmul
        torch.testing.assert_close(g, ref, rtol=1e-13, atol=1e-13)
        assert torch.equal(g, g.T)
        ev = c.sym_eigvalsh(g)
        torch.testing.assert_close(ev, torch.linalg.eigvalsh(ref), rtol=1e-12, atol=1e-12)


def test_alpha_req_scaling_after_the_eigensolve_matches_scaling_before():
    x = np.random.default_rng(3).normal(size=(300, 20)) * np.arange(1, 21) ** -0.8
    est = xent_core.estimator("alpha-req")
    value, info = est(x * 2.0**-10, details=True)
    # 2^450: outside the fast range, so the data is divided by the power of two first
    big, big_info = est(x * 2.0**450, details=True)
    assert value == pytest.approx(big, rel=1e-13)
    np.testing.assert_allclose(info["eigenvalues"] * 2.0**920, big_info["eigenvalues"], rtol=1e-12)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_numpy_buffers_give_the_autograd_paths_values_and_leave_the_input(center, normalize):
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(30, 6)) + 2.0)
    before = x.clone()
    fast = c.preprocess_rows(x, center=center, normalize_rows=normalize)
    ref = c.preprocess_rows(x.clone().requires_grad_(True), center=center, normalize_rows=normalize)
    assert torch.equal(fast, ref.detach())
    assert torch.equal(x, before)


@pytest.mark.parametrize("scale", [1e-20, 1e-30, 1e25])
def test_float32_rows_near_its_range_take_the_rescaled_path(scale):
    """float32's squares underflow (or overflow) far inside float64's safe range: rows of
    magnitude 1e-20 must be rescaled first, and come out as unit rows all the same."""
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(20, 6)) * scale).float()
    assert not c._squares_safe(x.norm(dim=1, keepdim=True))
    z = c.preprocess_rows(x, center=False, normalize_rows=True)
    assert torch.equal(z, _rescaled_unit_rows(x))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(20), rtol=1e-6, atol=0)
