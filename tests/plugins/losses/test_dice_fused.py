"""dice for class ids runs through a chunked autograd Function (``_fused_dice.FusedDice``).

Checked against an independent float64 reference of the exact formula (``1 - p_k`` as the
mass of the other classes, so it holds at any margin), against the general log-space path
(probability targets), with ``gradcheck``, at extreme margins and across block boundaries.
"""

from __future__ import annotations

import pytest
import torch
from xent_losses import _fused_dice
from xent_losses.dice import dice_loss

import xent_core


def _reference(
    z: torch.Tensor, ids: torch.Tensor, alpha: float, smooth: float, square: bool
) -> torch.Tensor:
    """float64 per-item Dice losses, 0 for ignored items (ids < 0); O(C^2), differentiable."""
    z = z.double()
    lse = torch.logsumexp(z, -1, keepdim=True)
    logp = z - lse
    c = z.shape[-1]
    cols = []
    for k in range(c):  # log(1 - p_k) = logsumexp over the other classes - lse
        others = torch.cat([z[:, :k], z[:, k + 1 :]], -1)
        cols.append(torch.logsumexp(others, -1, keepdim=True) - lse)
    t = torch.exp(alpha * torch.cat(cols, -1) + logp)
    valid = ids >= 0
    y = torch.nn.functional.one_hot(ids.clamp_min(0), c).double() * valid[:, None]
    den = t * t + y * y + smooth if square else t + y + smooth
    per_item = (1.0 - (2.0 * t * y + smooth) / den).sum(-1)
    return torch.where(valid, per_item, torch.zeros_like(per_item))


def _inputs(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = 3.0 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, c, (n,), generator=gen)
    ids[1] = -100  # ignored
    z[2, ids[2]] += 40.0  # confident and right: 1 - p_y ~ e^-40, below float32 eps
    z[3, (ids[3] + 1) % c] += 40.0  # confident and wrong
    z[4, (ids[4] + 1) % c] = float("-inf")  # a masked class
    z[5, ids[5]] += 0.0
    return z, ids


@pytest.mark.parametrize("square", (True, False))
@pytest.mark.parametrize("alpha", (0.0, 0.01, 0.7, 2.0))
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_values_and_gradients_match_the_float64_reference(square, alpha, dtype):
    z, ids = _inputs(11, 7)
    weights = torch.linspace(0.5, 1.5, 11, dtype=torch.float64)
    x = z.to(dtype).clone().requires_grad_()
    value = dice_loss(x, ids, alpha=alpha, square_denominator=square, reduction="none")
    (value.double() * weights).sum().backward()
    zr = z.clone().requires_grad_()
    ref = _reference(zr, ids, alpha, 1.0, square)
    (ref * weights).sum().backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(value.double(), ref.detach(), **tol)
    torch.testing.assert_close(x.grad.double(), zr.grad, **tol)


def test_gradcheck_float64():
    z, ids = _inputs(6, 5, seed=1)
    z[4, (ids[4] + 1) % 5] = -30.0  # gradcheck needs finite inputs
    z[2, ids[2]] -= 30.0  # keep finite differences meaningful
    z[3, (ids[3] + 1) % 5] -= 30.0
    x = z.clone().requires_grad_()
    for square in (True, False):
        assert torch.autograd.gradcheck(
            lambda v, s=square: dice_loss(v, ids, alpha=0.3, smooth=0.5, square_denominator=s),
            (x,),
        )


@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_class_ids_agree_with_the_general_path(dtype):
    z, ids = _inputs(9, 6, seed=2)
    ids[1] = 0  # probability targets have no ignored items
    soft = torch.nn.functional.one_hot(ids, 6).to(dtype)
    a = z.to(dtype).clone().requires_grad_()
    b = z.to(dtype).clone().requires_grad_()
    fast = dice_loss(a, ids, alpha=0.5, reduction="sum")
    general = dice_loss(b, soft, alpha=0.5, reduction="sum")  # soft targets: the general path
    fast.backward()
    general.backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(fast, general, **tol)
    torch.testing.assert_close(a.grad, b.grad, **tol)


@pytest.mark.parametrize("margin", (18.0, 50.0, 69.0, 120.0, 700.0))
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_extreme_margins(margin, dtype):
    """1 - p_m from e^-18 (below float32 eps) to e^-700; p_m = 1 - 1e-30 at margin 69."""
    if dtype == torch.float32 and margin > 100.0:
        margin = 100.0 + margin / 10.0  # float32 logits: keep the other classes' mass > 0
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    ids = torch.tensor([0, 1, 2, 3])
    z[0, 0] += margin  # confident and right
    z[1, 0] += margin  # confident and wrong
    z[2, 4] += margin
    z[2, 3] = float("-inf")
    z = z.to(dtype).double()  # the same inputs for both
    x = z.to(dtype).clone().requires_grad_()
    value = dice_loss(x, ids, alpha=0.01, reduction="none")
    value.sum().backward()
    zr = z.clone().requires_grad_()
    ref = _reference(zr, ids, 0.01, 1.0, True)
    ref.sum().backward()
    tol = {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(value.double(), ref.detach(), **tol)
    torch.testing.assert_close(x.grad.double(), zr.grad, **tol)


def test_one_class_empty_and_all_ignored_batches():
    x = torch.randn(3, 1, requires_grad=True)
    loss = dice_loss(x, torch.zeros(3, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.5  # p = 1: t = 0, l = 1 - 1 / 2
    assert torch.equal(x.grad, torch.zeros_like(x))
    empty = torch.zeros(0, 8, requires_grad=True)
    loss = dice_loss(empty, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and empty.grad.shape == (0, 8)
    ignored = torch.randn(4, 8, requires_grad=True)
    loss = dice_loss(ignored, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(ignored.grad, torch.zeros_like(ignored))


def test_ragged_blocks_give_the_unblocked_result(monkeypatch):
    z, ids = _inputs(13, 7, seed=4)
    z[6, 0] += 800.0  # a row past the fast path's range (general rows) inside a middle block
    z[11, ids[11]] += 800.0
    ref = _reference(z, ids, 0.2, 1.0, True)
    monkeypatch.setattr(_fused_dice, "_BLOCK_ELEMENTS", 21)  # 3 rows per block: 5 blocks, 1 ragged
    x = z.clone().requires_grad_()
    value = dice_loss(x, ids, alpha=0.2, reduction="none")
    value.sum().backward()
    zr = z.clone().requires_grad_()
    _reference(zr, ids, 0.2, 1.0, True).sum().backward()
    torch.testing.assert_close(value, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, zr.grad, rtol=1e-10, atol=1e-12)


def test_argmax_rows_finds_a_largest_entry():
    gen = torch.Generator().manual_seed(5)
    for c in (50, 2048, 2051, 4100):
        p = torch.rand(6, c, generator=gen)
        p[0, -1] = 2.0  # in the tail columns
        p[1, 0] = 2.0
        p[2] = 0.5  # all tied
        m = _fused_dice._argmax_rows(p)
        assert torch.equal(p.gather(1, m), p.amax(-1, keepdim=True))


def test_bfloat16_input_matches_float32_of_the_same_values():
    z, ids = _inputs(8, 96, seed=6)
    x16 = z.to(torch.bfloat16).requires_grad_()
    x32 = z.to(torch.bfloat16).float().requires_grad_()
    loss = xent_core.loss("dice", alpha=0.3)
    a = loss(x16, ids)
    b = loss(x32, ids)
    a.backward()
    b.backward()
    assert a.dtype == torch.float32 and x16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(x16.grad.float(), x32.grad, rtol=1e-2, atol=1e-5)
