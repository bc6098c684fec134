"""pass-at-n stays finite (and equals CE at n=1) when p_y underflows the compute dtype."""

from __future__ import annotations

import math

import pytest
import torch

import xent_core


def _reference(z: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """float64, with 1 - (1 - p)^n ~ n p (relative error (n - 1) p / 2) once p is tiny."""
    log_p = torch.log_softmax(z.double(), -1).gather(1, y[:, None]).squeeze(1)
    exact = -torch.log(-torch.expm1(n * torch.log1p(-log_p.exp())))
    return torch.where(log_p < -40, -math.log(n) - log_p, exact)


@pytest.mark.parametrize("n", [1, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pass_at_n_target_far_below_the_others(n, dtype):
    z = torch.zeros(4, 6, dtype=torch.float64)
    z[:, 0] = torch.tensor([0.0, 30.0, 110.0, 130.0])  # log p_y down to -130: exp underflows fp32
    z[:, 1] = torch.tensor([1.0, -2.0, 3.0, 0.0])
    y = torch.tensor([1, 1, 1, 1])
    x = z.to(dtype).requires_grad_()
    loss = xent_core.loss("pass-at-n", n=n, reduction="none")
    value = loss(x, y)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(value.double(), _reference(x.detach(), y, n), rtol=1e-5, atol=1e-4)
    if n == 1:
        ce = torch.nn.functional.cross_entropy(x.detach().double(), y, reduction="none")
        torch.testing.assert_close(value.double(), ce, rtol=1e-5, atol=1e-4)
