"""dice: the self-adjusting factor (1 - p)^alpha is accurate for confident items (p -> 1)."""

from __future__ import annotations

import torch

import xent_core


def _one_minus_p(z: torch.Tensor) -> torch.Tensor:
    """float64 ``1 - p_k`` as the mass of the other classes (no cancellation), O(C^2)."""
    lse = torch.logsumexp(z, -1, keepdim=True)
    cols = []
    for k in range(z.shape[-1]):
        others = torch.cat([z[:, :k], z[:, k + 1 :]], -1)
        cols.append(torch.logsumexp(others, -1, keepdim=True) - lse)
    return torch.cat(cols, -1).exp()


def _dice_reference(z: torch.Tensor, y: torch.Tensor, alpha: float, smooth: float) -> torch.Tensor:
    z = z.double()
    p = torch.softmax(z, -1)
    t = _one_minus_p(z).pow(alpha) * p
    onehot = torch.nn.functional.one_hot(y, z.shape[-1]).double()
    return (1.0 - (2 * t * onehot + smooth) / (t.square() + onehot.square() + smooth)).sum(-1)


def test_dice_confident_items_match_the_accurate_reference():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    z[torch.arange(6), y] += torch.tensor([2.0, 12.0, 20.0, 30.0, 45.0, 60.0])  # 1 - p_y to e^-60
    loss = xent_core.loss("dice", reduction="none")
    for dtype in (torch.float64, torch.float32):
        x = z.detach().to(dtype).clone().requires_grad_()
        value = loss(x, y)
        value.sum().backward()
        assert torch.isfinite(x.grad).all()
        zr = z.detach().clone().requires_grad_()
        ref = _dice_reference(zr, y, 0.01, 1.0)
        ref.sum().backward()
        torch.testing.assert_close(value.double(), ref.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(x.grad.double(), zr.grad, rtol=1e-3, atol=1e-5)
