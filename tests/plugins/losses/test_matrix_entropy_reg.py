"""matrix-entropy-reg vs closed forms, a float64 numpy oracle and the matrix-entropy estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64


def oracle(x: np.ndarray, order: float, center: bool = True, normalize: bool = True) -> float:
    """Renyi entropy (nats) of the eigenvalues of the trace-normalised covariance (numpy)."""
    z = np.asarray(x, dtype=np.float64)
    if center:
        z = z - z.mean(axis=0)
    if normalize:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(z.T @ z), 0, None)
    lam = lam / lam.sum()
    lam = lam[lam > 0]
    if order == 1:
        return float(-(lam * np.log(lam)).sum())
    return float(np.log((lam**order).sum()) / (1 - order))


def entropy(x, **params):
    return float(xent_core.loss("matrix-entropy-reg", maximize=False, **params)(x))


@pytest.mark.parametrize("order", [1.0, 2.0, 0.5, 3.0])
@pytest.mark.parametrize("d", [1, 3, 6])
def test_isotropic_features_give_log_d(order, d):
    eye = torch.eye(d, dtype=F64)
    x = torch.cat([eye, -eye])  # centred, unit rows, covariance I / d
    assert entropy(x, order=order) == pytest.approx(math.log(d), abs=1e-12)


@pytest.mark.parametrize("order", [1.0, 2.0, 0.5])
def test_rank_one_gives_zero(order):
    v = torch.tensor([0.3, -1.2, 2.0, 0.7], dtype=F64)
    x = torch.tensor([1.0, 2.0, 4.0], dtype=F64)[:, None] * v  # centred rows are +-v
    # orders below 1 amplify round-off eigenvalues (1e-17 ** 0.5 ~ 3e-9)
    assert entropy(x, order=order) == pytest.approx(0.0, abs=1e-12 if order >= 1 else 1e-6)


@pytest.mark.parametrize(("n", "d"), [(9, 4), (5, 11), (30, 7)])
@pytest.mark.parametrize("order", [1.0, 2.0, 1.5])
@pytest.mark.parametrize(("center", "normalize"), [(True, True), (False, False)])
def test_random_inputs_match_the_oracle(n, d, order, center, normalize):
    g = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=g, dtype=F64) + 0.5
    got = entropy(x, order=order, center=center, normalize_rows=normalize)
    assert got == pytest.approx(oracle(x.numpy(), order, center, normalize), rel=1e-10)


def test_sign_and_agreement_with_the_estimator():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(13, 5, generator=g, dtype=F64)
    h = xent_core.estimator("matrix-entropy")(x)
    assert float(xent_core.loss("matrix-entropy-reg", order=1.0)(x)) == pytest.approx(-h, rel=1e-12)
    assert entropy(x, order=1.0) == pytest.approx(h, rel=1e-12)


@pytest.mark.parametrize("order", [1.0, 2.0, 0.7])
def test_gradcheck_float64(order):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(7, 4, generator=g, dtype=F64, requires_grad=True)
    loss = xent_core.loss("matrix-entropy-reg", order=order)
    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-6)


def test_order_two_gradient_is_finite_with_repeated_eigenvalues():
    eye = torch.eye(4, dtype=F64)
    x = torch.cat([eye, -eye]).requires_grad_(True)  # all eigenvalues equal
    (grad,) = torch.autograd.grad(xent_core.loss("matrix-entropy-reg")(x), x)
    assert torch.isfinite(grad).all()
    assert float(grad.abs().max()) < 1e-12  # the maximum of H: a stationary point


def test_more_features_than_rows_uses_the_small_gram():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, 50, generator=g, dtype=F64)
    assert entropy(x, order=2.0) == pytest.approx(oracle(x.numpy(), 2.0), rel=1e-10)


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(1, 3),
        torch.randn(5),
        torch.randn(0, 3),
        torch.randint(0, 3, (4, 3)),
        torch.tensor([[1.0, 2.0], [1.0, 2.0]]),  # a zero row after centring
        torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
    ],
)
def test_bad_inputs(bad):
    with pytest.raises(BadInputError):
        xent_core.loss("matrix-entropy-reg")(bad)


@pytest.mark.parametrize(
    "params", [{"order": 0.0}, {"order": "2"}, {"maximize": 1}, {"reduction": "sum"}]
)
def test_bad_parameters(params):
    with pytest.raises(BadParameterError):
        xent_core.loss("matrix-entropy-reg", **params)
