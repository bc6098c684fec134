"""mmcr vs the spec's reference values and a float64 numpy oracle (lightly's peer is not
installable next to torch 2.13 here: its torchvision build does not load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64


def oracle(rows: np.ndarray, n_views: int, lmbda: float, normalize: bool = True) -> float:
    """Sample-major rows: per sample its N views; numpy SVDs in float64."""
    z = np.asarray(rows, dtype=np.float64)
    if normalize:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    samples = [z[i : i + n_views] for i in range(0, len(z), n_views)]
    centroids = np.stack([s.mean(axis=0) for s in samples])
    global_nuc = np.linalg.svd(centroids, compute_uv=False).sum()
    local = np.mean([np.linalg.svd(s, compute_uv=False).sum() for s in samples])
    return float(lmbda * local - global_nuc)


SPEC_ROWS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=F64)


@pytest.mark.parametrize(("lmbda", "want"), [(0.0, -1.3065629649), (0.005, -1.2965629649)])
def test_spec_reference(lmbda, want):
    value = xent_core.loss("mmcr", n_views=2, lmbda=lmbda)(SPEC_ROWS)
    assert float(value) == pytest.approx(want, abs=1e-10)
    assert oracle(SPEC_ROWS.numpy(), 2, lmbda) == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize(("b", "n", "d"), [(5, 2, 7), (3, 4, 3), (9, 3, 2), (1, 5, 4)])
@pytest.mark.parametrize("normalize", [True, False])
def test_random_inputs_match_the_oracle(b, n, d, normalize):
    g = torch.Generator().manual_seed(b * 100 + n * 10 + d)
    z = torch.randn(b * n, d, generator=g, dtype=F64)
    for lmbda in (0.0, 0.02, 1.0):
        got = float(xent_core.loss("mmcr", n_views=n, lmbda=lmbda, normalize=normalize)(z))
        assert got == pytest.approx(oracle(z.numpy(), n, lmbda, normalize), rel=1e-10, abs=1e-12)


def test_layouts_and_3d_input_agree():
    g = torch.Generator().manual_seed(3)
    cube = torch.randn(4, 3, 5, generator=g, dtype=F64)  # (B, N, d)
    sample_major = cube.reshape(12, 5)
    view_major = cube.transpose(0, 1).reshape(12, 5)
    ref = xent_core.loss("mmcr", n_views=3, lmbda=0.1)(sample_major)
    torch.testing.assert_close(xent_core.loss("mmcr", lmbda=0.1)(cube), ref)  # n_views from shape
    vm = xent_core.loss("mmcr", n_views=3, lmbda=0.1, layout="view-major")(view_major)
    torch.testing.assert_close(vm, ref)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(8, 3, generator=g, dtype=F64, requires_grad=True)
    loss = xent_core.loss("mmcr", n_views=2, lmbda=0.05)
    assert torch.autograd.gradcheck(loss, (z,), eps=1e-6, atol=1e-6)


def test_half_precision_is_computed_in_float32():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(10, 4, generator=g)
    got = xent_core.loss("mmcr", lmbda=0.01)(z.to(torch.bfloat16))
    assert got.dtype == torch.float32
    want = oracle(z.to(torch.bfloat16).double().numpy(), 2, 0.01)
    assert float(got) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(5, 3),  # 5 rows, 2 views
        torch.randn(4),
        torch.randn(0, 3),
        torch.randint(0, 3, (4, 3)),
        torch.tensor([[1.0, 0.0], [0.0, 0.0]]),  # a zero row cannot be normalised
        torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
    ],
)
def test_bad_inputs(bad):
    with pytest.raises(BadInputError):
        xent_core.loss("mmcr")(bad)


@pytest.mark.parametrize(
    "params",
    [{"n_views": 0}, {"n_views": 2.0}, {"lmbda": -1.0}, {"layout": "x"}, {"reduction": "none"}],
)
def test_bad_parameters(params):
    with pytest.raises(BadParameterError):
        xent_core.loss("mmcr", **params)
