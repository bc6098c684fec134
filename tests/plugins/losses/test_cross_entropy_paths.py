"""cross-entropy's three paths (PyTorch's fused kernel, the chunked Function, the composite
formula) agree in float64, values and gradients, for every option they share."""

from __future__ import annotations

import itertools

import pytest
import torch
from xent_losses import _fused_ce
from xent_losses._common import prepare
from xent_losses.cross_entropy import _fast_path, _fused_path, _soft_path

N, C = 23, 11


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(N, C, generator=gen, dtype=torch.float64)).requires_grad_()
    y = torch.randint(0, C, (N,), generator=gen)
    y[::4] = -100
    w = torch.rand(C, generator=gen, dtype=torch.float64) + 0.1
    return x, y, w


def _one_hot(y: torch.Tensor) -> torch.Tensor:
    """Probability targets equal to the class ids, ignored rows all zero."""
    q = torch.zeros(N, C, dtype=torch.float64)
    keep = y != -100
    q[keep] = torch.nn.functional.one_hot(y[keep], C).double()
    return q


def _run(path: str, x, y, w, reduction: str, eps: float) -> tuple[torch.Tensor, ...]:
    if path == "soft":
        keep = (y != -100).double()[:, None]
        q = _one_hot(y) * (1 - eps) + (eps / C) * keep  # ignored rows: all zero
        b = prepare(x, q, who="t")
        out = _soft_path(
            b, w, "sum" if reduction == "mean" else reduction, 0.0, 0.0, None, 1.0, None
        )
        if reduction == "mean":  # PyTorch's denominator: the weights of the valid targets
            valid = y != -100
            out = out / (w[y[valid]].sum() if w is not None else valid.sum())
    else:
        b = prepare(x, y, who="t", upcast=False)
        if path == "fast":
            out = _fast_path(b, y, w, -100, reduction, eps, None)
        else:
            out = _fused_path(b, w, reduction, eps, 0.0, None, 1.0, None)
    (g,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g


@pytest.mark.parametrize(
    ("reduction", "eps", "weighted"),
    list(itertools.product(("mean", "sum", "none"), (0.0, 0.3), (False, True))),
)
def test_fast_fused_and_composite_paths_agree(reduction: str, eps: float, weighted: bool) -> None:
    x, y, w = _inputs(int(eps * 10) + 2 * weighted + 5 * len(reduction))
    w = w if weighted else None
    fast = _run("fast", x, y, w, reduction, eps)
    fused = _run("fused", x, y, w, reduction, eps)
    soft = _run("soft", x, y, w, reduction, eps)
    for got in (fused, soft):
        torch.testing.assert_close(got[0], fast[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], fast[1], rtol=1e-12, atol=1e-12)


def test_fused_function_blocks_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Softcap, temperature and z-loss through several row blocks equal the composite form."""
    x, y, w = _inputs(7)
    monkeypatch.setattr(_fused_ce, "_BLOCK_ELEMENTS", 3 * C)  # blocks of 3 rows, one ragged
    b = prepare(x, y, who="t", upcast=False)
    got = _fused_path(b, w, "mean", 0.2, 1e-2, 4.0, 1.7, None)
    (g_got,) = torch.autograd.grad(got, x)
    z = 4.0 * torch.tanh(x / 4.0) / 1.7
    logp = torch.log_softmax(z, -1)
    keep = y != -100
    yk = y.clamp_min(0)
    nll = -logp.gather(1, yk[:, None]).squeeze(1)
    smooth = -(logp * w).sum(-1)
    per = 0.8 * w[yk] * nll + 0.2 / C * smooth
    ref = (per * keep).sum() / (w[yk] * keep).sum()
    ref = ref + 1e-2 * ((torch.logsumexp(z, -1) ** 2) * keep).sum() / keep.sum()
    (g_ref,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-10, atol=1e-12)


def test_fused_function_gradcheck() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 2, 2])
    a = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0], dtype=torch.float64)
    s = torch.full((5,), 0.05, dtype=torch.float64)
    w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: _fused_ce.FusedCrossEntropy.apply(t, y, a, s, w, 2.5, 0.7, True), (x,)
    )


def _tanh32(x: torch.Tensor, softcap: float) -> torch.Tensor:
    out = torch.empty(x.shape)
    return _fused_ce._tanh_into(x, softcap, out, torch.empty_like(out))


def test_float32_tanh_of_the_cap_matches_float64() -> None:
    """The CPU float32 tanh (``expm1`` form) is within 2 ulp of float64 over the whole range."""
    gen = torch.Generator().manual_seed(11)
    scales = (1e-30, 1e-6, 1e-3, 0.1, 1.0, 3.0, 10.0, 30.0, 1e3)
    u = torch.cat([torch.randn(2000, generator=gen) * s for s in scales])
    u = torch.cat([u, torch.tensor([0.0, -0.0, 20.0, -20.0, 1e30, -1e30])])
    got = _tanh32(u, 1.0).double()
    ref = torch.tanh(u.double())
    ulp = torch.finfo(torch.float32).eps * ref.abs().clamp_min(torch.finfo(torch.float32).tiny)
    assert ((got - ref).abs() <= 2 * ulp).all()
    x = torch.randn(7, 5, generator=gen).bfloat16()
    torch.testing.assert_close(_tanh32(x, 4.0), torch.tanh(x.float() / 4.0), rtol=4e-7, atol=0)


@pytest.mark.parametrize("rows_per_block", [None, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("options", [{}, {"softcap": 3.0}, {"z_loss": 1e-3, "temperature": 1.3}])
def test_fused_path_in_float32_matches_float64(
    dtype: torch.dtype, options: dict, rows_per_block: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused softmax kernels per block (fast path) against float64 autograd (general path),
    in one block and in ragged blocks of 5 rows that reuse the same float32 buffers."""
    if rows_per_block is not None:
        monkeypatch.setattr(_fused_ce, "_BLOCK_ELEMENTS", rows_per_block * 1031)
    gen = torch.Generator().manual_seed(13)
    x = (3 * torch.randn(37, 1031, generator=gen)).to(dtype)
    y = torch.randint(0, 1031, (37,), generator=gen)
    y[::5] = -100
    x32 = x.clone().requires_grad_()
    b = prepare(x32, y, who="t", upcast=False)
    got = _fused_path(
        b,
        None,
        "mean",
        0.1,
        options.get("z_loss", 0.0),
        options.get("softcap"),
        options.get("temperature", 1.0),
        None,
    )
    (g_got,) = torch.autograd.grad(got, x32)
    x64 = x.double().requires_grad_()
    z = x64
    if "softcap" in options:
        z = options["softcap"] * torch.tanh(z / options["softcap"])
    z = z / options.get("temperature", 1.0)
    keep = y != -100
    ref = torch.nn.functional.cross_entropy(z, y, label_smoothing=0.1)
    ref = ref + options.get("z_loss", 0.0) * (torch.logsumexp(z, -1)[keep] ** 2).mean()
    (g_ref,) = torch.autograd.grad(ref, x64)
    assert got.dtype == torch.float32 and g_got.dtype == dtype
    torch.testing.assert_close(got.double(), ref, rtol=2e-6, atol=0)
    rtol = 1e-5 if dtype == torch.float32 else 8e-3  # the gradient is written in the input dtype
    torch.testing.assert_close(g_got.double(), g_ref, rtol=rtol, atol=rtol * g_ref.abs().max())
