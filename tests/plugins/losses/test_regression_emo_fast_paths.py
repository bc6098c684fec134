"""The fast paths of two-hot, hl-gauss (``soft_nll``) and emo agree with their dense formulas."""

from __future__ import annotations

import pytest
import torch
from xent_losses import _fused_ce
from xent_losses._common import soft_nll
from xent_losses.two_hot import two_hot_target

import xent_core

VMIN, VMAX, BINS = -2.0, 3.0, 11


def _regression_inputs(seed: int, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(13, BINS, generator=gen, dtype=torch.float64)).to(dtype)
    v = (VMIN - 1 + (VMAX - VMIN + 2) * torch.rand(13, generator=gen, dtype=torch.float64)).to(
        dtype
    )
    v[0], v[1], v[2], v[3] = VMIN, VMAX, 0.5, float("nan")  # both ends, an atom, ignored
    x[2, 6] = float("-inf")  # 0.5 is atom 5 exactly: its zero-weight neighbour is ruled out
    x[1, BINS - 2] = float("-inf")  # VMAX: the lower atom has weight 0
    x[4, 0] += 60.0  # a near-one-hot row
    return x, v


def _dense_two_hot(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-item ``-sum_k target_k log p_k`` over the dense target (0 on ignored items)."""
    ok = ~torch.isnan(v)
    t = two_hot_target(torch.where(ok, v, torch.zeros_like(v)), VMIN, VMAX, BINS).to(x.dtype)
    lp = torch.log_softmax(x, -1)
    rows = -torch.where(t == 0, torch.zeros_like(lp), t * lp).sum(-1)
    return torch.where(ok, rows, torch.zeros_like(rows))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_two_hot_fused_matches_the_dense_target_in_float64(
    reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fused_ce, "_BLOCK_ELEMENTS", 4 * BINS)  # blocks of 4 rows, one ragged
    x, v = _regression_inputs(0)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = xent_core.loss("two-hot", vmin=VMIN, vmax=VMAX, num_bins=BINS, reduction=reduction)(
        a, values=v
    )
    rows = _dense_two_hot(b, v)
    ok = ~torch.isnan(v)
    ref = {"none": rows, "sum": rows.sum(), "mean": rows.sum() / ok.sum()}[reduction]
    weights = torch.linspace(0.5, 2.0, got.numel(), dtype=torch.float64).reshape(got.shape)
    (g_got,) = torch.autograd.grad((got * weights).sum(), a)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), b)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-10, atol=1e-13)
    assert torch.isfinite(got).all() and (g_got[3] == 0).all()


def test_two_hot_fused_in_float32_and_bfloat16_matches_float64() -> None:
    x, v = _regression_inputs(1)
    loss = xent_core.loss("two-hot", vmin=VMIN, vmax=VMAX, num_bins=BINS)
    ok = ~torch.isnan(v)
    for dtype in (torch.float32, torch.bfloat16):
        xl = x.to(dtype)
        got = loss(xl, values=v.float())
        want = _dense_two_hot(xl.double(), v.float().double()).sum() / ok.sum()  # same inputs
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)


def test_two_hot_empty_input_is_zero_with_zero_gradient() -> None:
    x = torch.zeros(0, BINS, dtype=torch.float64, requires_grad=True)
    got = xent_core.loss("two-hot", vmin=VMIN, vmax=VMAX, num_bins=BINS)(x, values=torch.zeros(0))
    got.backward()
    assert got.item() == 0 and x.grad is not None and x.grad.shape == x.shape


def test_soft_nll_plain_product_matches_the_masked_form() -> None:
    gen = torch.Generator().manual_seed(2)
    q = torch.rand(6, 7, generator=gen, dtype=torch.float64)
    q[q < 0.3] = 0.0
    lp = torch.log_softmax(torch.randn(6, 7, generator=gen, dtype=torch.float64), -1)
    for logp in (lp, lp.masked_fill((q == 0) & (torch.arange(7) < 3), float("-inf"))):
        a, b = logp.clone().requires_grad_(), logp.clone().requires_grad_()
        got = soft_nll(q, a)
        ref = -torch.where(q == 0, torch.zeros_like(b), q * b).sum(-1)
        (g_got,) = torch.autograd.grad(got.sum(), a)
        (g_ref,) = torch.autograd.grad(ref.sum(), b)
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
        torch.testing.assert_close(g_got, g_ref, rtol=0, atol=0)


def test_hl_gauss_with_a_ruled_out_far_bin_is_finite() -> None:
    x = torch.zeros(2, 64, dtype=torch.float64)
    x[:, -1] = float("-inf")  # the target's far tail underflows to exactly 0 there
    x.requires_grad_()
    got = xent_core.loss("hl-gauss", vmin=0.0, vmax=64.0, num_bins=64, sigma_ratio=0.5)(
        x, values=torch.tensor([1.0, 2.0], dtype=torch.float64)
    )
    got.backward()
    assert torch.isfinite(got) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("mix", "max_ratio"), [("dynamic", None), ("dynamic", 0.5), ("none", None)]
)
def test_emo_class_ids_match_one_hot_probability_targets(mix: str, max_ratio) -> None:
    gen = torch.Generator().manual_seed(3)
    x = 2 * torch.randn(9, 12, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 12, (9,), generator=gen)
    y[4] = -100
    x[5, y[5]] += 50.0  # DEMD ~ 0: the dynamic ratio's guard
    x[6, (y[6] + 1) % 12] = float("-inf")  # a class ruled out
    e = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    loss = xent_core.loss("emo", mix=mix, max_ratio=max_ratio, reduction="none")
    ok = y != -100
    a, b = x.clone().requires_grad_(), x[ok].clone().requires_grad_()
    got = loss(a, targets=y, classifier=e)
    probs = torch.nn.functional.one_hot(y[ok], 12).to(x.dtype)
    ref = loss(b, targets=probs, classifier=e)
    (g_got,) = torch.autograd.grad(got.sum(), a)
    (g_ref,) = torch.autograd.grad(ref.sum(), b)
    torch.testing.assert_close(got[ok], ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_got[ok], g_ref, rtol=1e-9, atol=1e-12)
    assert got[4] == 0 and (g_got[4] == 0).all()


def test_emo_class_ids_gradcheck_of_the_distance() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, -100, 6, 2])
    e = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    loss = xent_core.loss("emo", mix="none", reduction="sum")
    assert torch.autograd.gradcheck(lambda t: loss(t, targets=y, classifier=e), (x,))
