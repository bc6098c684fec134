"""The fast paths of pass-at-n and ldr-kl agree with their general (autograd) formulas in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from xent_losses import pass_at_n as pan
from xent_losses.ldr_kl import normalize_scores


def _logits(seed: int, n: int = 17, c: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=gen)
    x[0, y[0]] += 40.0  # p_y -> 1: 1 - p_y ~ e^-40 needs the other classes' sum
    x[1, y[1]] -= 120.0  # p_y ~ e^-120: the tiny branch
    x[2, y[2]] += 5.0
    y[3] = -100
    return x, y


@pytest.mark.parametrize("n", [1, 2, 8])
def test_pass_at_n_fused_blocks_match_the_autograd_formula(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pan, "_BLOCK_ELEMENTS", 3 * 9)  # blocks of 3 rows, one ragged
    x, y = _logits(n)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast = pan.pass_at_n_loss(a, y, n=n, reduction="none")
    slow = pan.pass_at_n_reference(b, y, n=n)
    weights = torch.rand(len(y), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), a)
    (g_slow,) = torch.autograd.grad((slow * weights).sum(), b)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-14)
    assert fast[3] == 0 and (g_fast[3] == 0).all()
    if n == 1:  # cross-entropy
        torch.testing.assert_close(
            fast[y != -100], F.cross_entropy(x, y, reduction="none")[y != -100]
        )


def test_pass_at_n_fused_gradcheck() -> None:
    x, y = _logits(3, n=6, c=5)
    x = (x / 10).requires_grad_()
    y[3] = 1
    assert torch.autograd.gradcheck(lambda t: pan._PassAtN.apply(t, y, 3), (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pass_at_n_fused_in_low_precision_matches_float64(dtype: torch.dtype) -> None:
    x, y = _logits(11, n=33, c=301)
    x_low = x.to(dtype).requires_grad_()
    got = pan.pass_at_n_loss(x_low, y, n=4)
    (g_got,) = torch.autograd.grad(got, x_low)
    x64 = x_low.detach().double().requires_grad_()
    ref = pan.pass_at_n_reference(x64, y, n=4).sum() / (y != -100).sum()
    (g_ref,) = torch.autograd.grad(ref, x64)
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=0)
    tol = 1e-6 if dtype == torch.float32 else 8e-3
    torch.testing.assert_close(g_got.double(), g_ref, rtol=tol, atol=tol * g_ref.abs().max())


def _softplus_mean_reference(f: torch.Tensor) -> torch.Tensor:
    """float64: softplus(f) / mean softplus(f) as written; rows below -600 (where softplus
    underflows float64) as exp(f - max) / mean exp(f - max), softplus = exp there to 1e-260."""
    rows = []
    for row in f:
        if row.max() < -600:
            e = torch.exp(row - row.max())
            rows.append(e / e.mean())
        else:
            rows.append(F.softplus(row) / F.softplus(row).mean())
    return torch.stack(rows)


def test_ldr_kl_shifted_softplus_matches_the_plain_formula() -> None:
    gen = torch.Generator().manual_seed(2)
    f = 4 * torch.randn(6, 13, generator=gen, dtype=torch.float64)
    f[1] -= 25.0  # max around -20: no shift
    f[2] -= 60.0  # shifted
    f[3] -= 900.0  # softplus underflows even in float64 without the shift
    a, b = f.clone().requires_grad_(), f.clone().requires_grad_()
    fast, slow = normalize_scores(a, "softplus-mean"), _softplus_mean_reference(b)
    w = torch.randn(6, 13, generator=gen, dtype=torch.float64)
    (g_fast,) = torch.autograd.grad((fast * w).sum(), a)
    (g_slow,) = torch.autograd.grad((slow * w).sum(), b)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    f32 = f.float() - 100.0  # float32, whole rows below -100
    low = normalize_scores(f32, "softplus-mean")
    assert torch.isfinite(low).all()
    ref = _softplus_mean_reference(f32.double())
    torch.testing.assert_close(low.double(), ref, rtol=1e-5, atol=1e-6)
