"""The fast paths of binary-kd, symmetric-ce, attention-entropy-reg and nt-xent agree with their
general paths and with float64 formulas written out here (values and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import xent_core

F64 = torch.float64


def _grad(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(value, x)
    return g


# ------------------------------------------------------------------------------ binary-kd
def _bkd_ref(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(t * F.logsigmoid(s) + (1 - t) * F.logsigmoid(-s))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_kd_fused_reduction_matches_masked_path_and_float64(
    temperature: float, reduction: str
) -> None:
    gen = torch.Generator().manual_seed(0)
    s64 = 4 * torch.randn(6, 7, generator=gen, dtype=F64)
    s64[0, :3] = torch.tensor([80.0, -80.0, 0.0], dtype=F64)  # saturated student logits
    t_logits = 4 * torch.randn(6, 7, generator=gen, dtype=F64)
    t_logits[1, :2] = torch.tensor([-60.0, 60.0], dtype=F64)
    for dtype in (F64, torch.float32):
        x = s64.to(dtype).requires_grad_()
        f = xent_core.loss("binary-kd", temperature=temperature, reduction=reduction)
        fast = f(x, teacher_logits=t_logits.to(dtype))  # no mask: fused BCE reduction
        general = f(x, teacher_logits=t_logits.to(dtype), mask=torch.ones(6, 7, dtype=torch.bool))
        ref = _bkd_ref(s64 / temperature, torch.sigmoid(t_logits / temperature))
        ref = ref.mean() if reduction == "mean" else ref.sum()
        tol = {"rtol": 1e-12, "atol": 0} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-6}
        torch.testing.assert_close(fast.double(), ref, **tol)
        torch.testing.assert_close(fast, general, **tol)
        y = s64.clone().requires_grad_()
        ref_y = _bkd_ref(y / temperature, torch.sigmoid(t_logits / temperature))
        g_ref = _grad(ref_y.mean() if reduction == "mean" else ref_y.sum(), y)
        torch.testing.assert_close(_grad(fast, x).double(), g_ref, **tol)


def test_binary_kd_empty_input_and_probs_path() -> None:
    empty = torch.zeros(0, 3, dtype=F64)
    for reduction in ("mean", "sum"):
        assert (
            float(xent_core.loss("binary-kd", reduction=reduction)(empty, teacher_probs=empty)) == 0
        )
    gen = torch.Generator().manual_seed(1)
    s, p = torch.randn(5, generator=gen, dtype=F64), torch.rand(5, generator=gen, dtype=F64)
    p[0], p[1] = 0.0, 1.0
    got = xent_core.loss("binary-kd")(s, teacher_probs=p)
    torch.testing.assert_close(got, _bkd_ref(s, p).mean(), rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------ symmetric-ce
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_symmetric_ce_unmasked_path_matches_all_true_mask_and_float64(reduction: str) -> None:
    gen = torch.Generator().manual_seed(2)
    s = 5 * torch.randn(4, 3, 8, generator=gen, dtype=F64)
    t = 5 * torch.randn(4, 3, 8, generator=gen, dtype=F64)
    s[0, 0, 0], t[1, 1, 1] = 200.0, -200.0  # one-hot-like rows
    f = xent_core.loss("symmetric-ce", alpha=0.3, reduction=reduction)
    x = s.clone().requires_grad_()
    fast = f(x, t)
    general = f(x, t, torch.ones(4, 3, dtype=torch.bool))
    lp, lq = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    per = -(0.7 * (lq.exp() * lp).sum(-1) + 0.3 * (lp.exp() * lq).sum(-1))
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    torch.testing.assert_close(fast, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fast, general, rtol=1e-12, atol=1e-14)
    w = torch.rand(fast.shape, generator=gen, dtype=F64)
    y = s.clone().requires_grad_()
    lp = torch.log_softmax(y, -1)
    per_y = -(0.7 * (lq.exp() * lp).sum(-1) + 0.3 * (lp.exp() * lq).sum(-1))
    ref_y = {"mean": per_y.mean(), "sum": per_y.sum(), "none": per_y}[reduction]
    torch.testing.assert_close(
        _grad((fast * w).sum(), x), _grad((ref_y * w).sum(), y), rtol=1e-10, atol=1e-14
    )


# ------------------------------------------------------------------------------ attention-entropy-reg
def test_attention_row_entropy_matches_float64_with_zero_probabilities() -> None:
    from xent_losses.attention_entropy_reg import _RowEntropy

    gen = torch.Generator().manual_seed(3)
    a = torch.softmax(4 * torch.randn(2, 3, 5, 6, generator=gen, dtype=F64), -1)
    a[0, 0, 0] = torch.tensor([0.5, 0.5, 0, 0, 0, 0], dtype=F64)  # exact zeros
    a[1, 2, 4] = torch.tensor([1.0, 0, 0, 0, 0, 0], dtype=F64)
    a[0, 1, 2, 3] = 1e-300  # tiny but positive
    x = a.clone().requires_grad_()
    h = _RowEntropy.apply(x)
    safe = torch.where(a > 0, a, torch.ones_like(a))
    torch.testing.assert_close(h, -(a * safe.log()).sum(-1), rtol=1e-13, atol=1e-300)
    w = torch.rand(h.shape, generator=gen, dtype=F64)
    g = _grad((h * w).sum(), x)
    want = torch.where(a > 0, -(a.log() + 1), torch.zeros_like(a)) * w[..., None]
    torch.testing.assert_close(g, want, rtol=1e-13, atol=0)
    assert bool(torch.isfinite(g).all()) and (g[a == 0] == 0).all()
    pos = torch.softmax(torch.randn(2, 4, generator=gen, dtype=F64), -1).requires_grad_()
    assert torch.autograd.gradcheck(_RowEntropy.apply, (pos,))


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_attention_entropy_reg_matches_the_written_out_penalty(reduction: str) -> None:
    gen = torch.Generator().manual_seed(4)
    a = torch.softmax(3 * torch.randn(2, 3, 4, 7, generator=gen, dtype=F64), -1)
    x = a.clone().requires_grad_()
    got = xent_core.loss("attention-entropy-reg", coefficient=0.5, reduction=reduction)(x)
    y = a.clone().requires_grad_()
    h = -(y * y.log()).sum(-1)
    hmax = math.log(7)
    dev = h - 0.5 * hmax
    pen = 0.5 * (dev.abs() > 0.2 * hmax) * dev.square()
    want = {"sum": pen.sum() / 3, "mean": pen.mean(), "none": pen}[reduction]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(_grad(got.sum(), x), _grad(want.sum(), y), rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------------------ nt-xent
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("tau", [0.5, 0.01])
def test_nt_xent_cross_entropy_path_matches_float64_logsumexp(reduction: str, tau: float) -> None:
    gen = torch.Generator().manual_seed(5)
    a64 = torch.randn(6, 4, generator=gen, dtype=F64)
    b64 = a64 + 0.3 * torch.randn(6, 4, generator=gen, dtype=F64)
    a64[0] *= 100.0  # the scale does not matter after normalising

    def ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = torch.cat([a, b]) / torch.cat([a, b]).norm(dim=1, keepdim=True)
        sim = z @ z.T / tau
        sim = sim - torch.diag(torch.full((12,), math.inf, dtype=F64))
        pos = torch.cat([torch.arange(6, 12), torch.arange(6)])
        per = torch.logsumexp(sim, 1) - sim[torch.arange(12), pos]
        return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]

    f = xent_core.loss("nt-xent", temperature=tau, reduction=reduction)
    ra, rb = a64.clone().requires_grad_(), b64.clone().requires_grad_()
    want = ref(ra, rb)
    w = torch.rand(want.shape, generator=gen, dtype=F64)
    g_want = torch.autograd.grad((want * w).sum(), (ra, rb))
    for dtype in (F64, torch.float32):
        xa, xb = a64.to(dtype).requires_grad_(), b64.to(dtype).requires_grad_()
        got = f(xa, xb)
        tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == F64 else {"rtol": 2e-4, "atol": 1e-4}
        torch.testing.assert_close(got.double(), want.detach(), **tol)
        g_got = torch.autograd.grad((got * w.to(dtype)).sum(), (xa, xb))
        for gg, gw in zip(g_got, g_want):
            torch.testing.assert_close(gg.double(), gw, **tol)
