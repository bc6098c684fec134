"""linear-kd / linear-jsd with -inf biases (padded vocabulary entries masked out) match kd / jsd."""

from __future__ import annotations

import pytest
import torch

import xent_core

N, D, V = 9, 5, 11


def _inputs():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    w = torch.randn(V, D, generator=g, dtype=torch.float64)
    th = torch.randn(N, D, generator=g, dtype=torch.float64)
    tw = torch.randn(V, D, generator=g, dtype=torch.float64)
    masked = torch.zeros(V, dtype=torch.float64)
    masked[-3:] = float("-inf")  # padded vocabulary rows
    return h, w, th, tw, masked


@pytest.mark.parametrize("name", ["kd", "jsd"])
@pytest.mark.parametrize("side", ["teacher", "both"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_masked_vocab_matches_unfused(name, side, reduction):
    h, w, th, tw, masked = _inputs()
    b = masked if side == "both" else torch.zeros(V, dtype=torch.float64)
    tb = masked
    fused = xent_core.loss(f"linear-{name}", temperature=2.0, chunk_size=4, reduction=reduction)
    plain = xent_core.loss(name, temperature=2.0, reduction=reduction)
    hf = h.clone().requires_grad_()
    vf = fused(hf, w, th, tw, bias=b, teacher_bias=tb)
    vf.sum().backward()
    hp = h.clone().requires_grad_()
    vp = plain(hp @ w.T + b, teacher_logits=th @ tw.T + tb)
    vp.sum().backward()
    assert torch.isfinite(vp).all() and torch.isfinite(hp.grad).all()
    torch.testing.assert_close(vf, vp)
    torch.testing.assert_close(hf.grad, hp.grad)
