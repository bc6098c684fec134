"""``xent_distill.functional`` helpers: ``log1mexp`` edges, shared with ``xent_losses``."""

from __future__ import annotations

import math

import pytest
import torch
from xent_distill.functional import log1mexp
from xent_losses.pass_at_n import log1mexp as losses_log1mexp

EDGES = [
    float("-inf"), -1e30, -745.0, -100.0, -50.0, -1.0, -math.log(2.0) - 1e-7, -math.log(2.0),
    -math.log(2.0) + 1e-7, -0.5, -1e-5, -1e-30, -0.0, 0.0, 1e-8, 1.0, float("inf"), float("nan"),
]  # fmt: skip


def _reference(x: float) -> float:
    """``log(1 - e^x)`` in double precision, the obvious way where it is exact enough."""
    if math.isnan(x) or x > 0:
        return float("nan")
    if x == 0:
        return float("-inf")
    if x == float("-inf"):
        return 0.0
    return math.log(-math.expm1(x)) if x > -math.log(2.0) else math.log1p(-math.exp(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log1mexp_edges_and_values(dtype):
    x = torch.tensor(EDGES, dtype=dtype)
    got = log1mexp(x)
    ref = torch.tensor([_reference(float(v)) for v in x.double()], dtype=torch.float64)
    torch.testing.assert_close(got.double(), ref, rtol=4 * torch.finfo(dtype).eps, atol=torch.finfo(dtype).tiny,
                               equal_nan=True)  # fmt: skip
    assert float(log1mexp(torch.tensor(-math.log(2.0), dtype=torch.float64))) == pytest.approx(
        -math.log(2.0), rel=1e-15
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_definition_per_plugin_with_the_same_edges(dtype):
    x = torch.tensor(EDGES, dtype=dtype)
    torch.testing.assert_close(log1mexp(x), losses_log1mexp(x), rtol=0, atol=0, equal_nan=True)


def test_log1mexp_gradient_is_finite_on_both_sides_of_the_switch():
    x = torch.tensor([-1e4, -3.0, -0.7, -0.69, -0.1, -1e-6], dtype=torch.float64)
    x.requires_grad_()
    log1mexp(x).sum().backward()
    expected = -torch.exp(x.detach()) / -torch.expm1(x.detach())  # d/dx log(1 - e^x)
    torch.testing.assert_close(x.grad, expected)
