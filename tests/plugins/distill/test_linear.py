"""linear-kd / linear-jsd: the chunked path equals the materialised one, in values and gradients."""

from __future__ import annotations

import zlib

import pytest
import torch

import xent_core

N, D, DT, V = 67, 19, 13, 257  # odd sizes; chunk_size=16 leaves a remainder chunk


def _inputs(seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, D, generator=g)
    w = torch.randn(V, D, generator=g) * 0.5
    w[:20] = h[:20] * 0.8  # peaked rows: some tokens' own direction is a class
    b = torch.randn(V, generator=g) * 0.1
    th = torch.randn(N, DT, generator=g)
    tw = torch.randn(V, DT, generator=g) * 0.7
    tb = torch.randn(V, generator=g) * 0.1
    y = torch.randint(0, V, (N,), generator=g)
    y[::5] = -100
    return [x.to(dtype) if x.is_floating_point() else x for x in (h, w, b, th, tw, tb, y)]


def _cap(z, c):
    return z if c is None else c * torch.tanh(z / c)


def _unfused(name, params, h, w, b, th, tw, tb, y, reduction):
    c = params.get("softcap")
    logit_params = {k: v for k, v in params.items() if k not in ("softcap", "chunk_size")}
    loss = xent_core.loss(name.removeprefix("linear-"), reduction=reduction, **logit_params)
    return loss(_cap(h @ w.T + b, c), _cap(th @ tw.T + tb, c), targets=y)


CASES = [
    ("linear-kd", {"temperature": 2.0}),
    ("linear-kd", {"temperature": 1.0, "softcap": 5.0, "scale_by_t2": False}),
    ("linear-jsd", {"beta": 0.5}),
    ("linear-jsd", {"beta": 0.2, "temperature": 1.5, "softcap": 4.0}),
    ("linear-jsd", {"beta": 0.0, "temperature": 2.0}),
    ("linear-jsd", {"beta": 1.0, "normalize": True}),
]


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_fused_equals_unfused_against_float64(name, params, reduction):
    """fp32 fused error vs the float64 reference is within PyTorch's own fp32 error + a margin.

    The margin is twice PyTorch's error plus 16 fp32 ulps of the largest reference entry: on some
    draws PyTorch's own error is luckily tiny (a few ulps), which alone would make the rule flaky.
    """
    h, w, b, th, tw, tb, y = _inputs(zlib.crc32(f"{name}{params}".encode()) % 997)
    fused = xent_core.loss(name, chunk_size=16, reduction=reduction, **params)

    def run(fn, dtype):
        xs = [x.to(dtype).requires_grad_() for x in (h, w, b)]
        out = fn(*xs, th.to(dtype), tw.to(dtype), tb.to(dtype))
        seed = torch.linspace(0.5, 1.5, out.numel(), dtype=dtype).reshape(out.shape)
        grads = torch.autograd.grad((out * seed).sum(), xs)
        return out.detach().double(), [g.double() for g in grads]

    def fused_fn(h_, w_, b_, th_, tw_, tb_):
        return fused(h_, w_, th_, tw_, targets=y, bias=b_, teacher_bias=tb_)

    def unfused_fn(h_, w_, b_, th_, tw_, tb_):
        return _unfused(name, params, h_, w_, b_, th_, tw_, tb_, y, reduction)

    ref_v, ref_g = run(unfused_fn, torch.float64)
    ours64_v, ours64_g = run(fused_fn, torch.float64)
    torch.testing.assert_close(ours64_v, ref_v, rtol=1e-10, atol=1e-12)
    for a, r in zip(ours64_g, ref_g):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-12)
    ours_v, ours_g = run(fused_fn, torch.float32)
    torch_v, torch_g = run(unfused_fn, torch.float32)
    ulp = torch.finfo(torch.float32).eps

    def bound(torch_out: torch.Tensor, ref: torch.Tensor) -> float:
        return 2 * float((torch_out - ref).abs().max()) + 16 * ulp * float(ref.abs().max())

    assert float((ours_v - ref_v).abs().max()) <= bound(torch_v, ref_v)
    for a, t, r in zip(ours_g, torch_g, ref_g):
        assert float((a - r).abs().max()) <= bound(t, r)


def test_gradcheck_float64_tiny():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    th, tw = (
        torch.randn(7, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
    )
    y = torch.tensor([0, 1, -100, 3, 4, 5, 2])
    kd = xent_core.loss("linear-kd", temperature=2.0, softcap=3.0, chunk_size=3)
    jsd = xent_core.loss("linear-jsd", beta=0.3, chunk_size=2, reduction="none")
    assert torch.autograd.gradcheck(
        lambda *x: kd(x[0], x[1], th, tw, targets=y, bias=x[2]), (h, w, b)
    )
    assert torch.autograd.gradcheck(
        lambda *x: jsd(x[0], x[1], th, tw, targets=y, bias=x[2]), (h, w, b)
    )


def test_leading_dims_sum_num_items_and_all_ignored():
    h, w, _b, th, tw, _tb, y = _inputs(5, torch.float64)
    loss_sum = xent_core.loss("linear-kd", reduction="sum", chunk_size=16)
    total = loss_sum(h, w, th, tw, targets=y)
    three_d = xent_core.loss("linear-kd", reduction="none", chunk_size=16)(
        h[:66].reshape(6, 11, D), w, th[:66].reshape(6, 11, DT), tw, targets=y[:66].reshape(6, 11)
    )
    assert three_d.shape == (6, 11)
    mean = xent_core.loss("linear-kd", chunk_size=16)(h, w, th, tw, targets=y, num_items=100)
    torch.testing.assert_close(mean, total / 100)
    x = h.clone().requires_grad_()
    w2 = w.clone().requires_grad_()
    out = xent_core.loss("linear-jsd")(x, w2, th, tw, targets=torch.full_like(y, -100))
    gx, gw = torch.autograd.grad(out, (x, w2))
    assert float(out.detach()) == 0.0 and bool((gx == 0).all()) and bool((gw == 0).all())


def test_teacher_gets_no_gradient_and_no_grad_forward_works():
    h, w, _b, th, tw, _tb, y = _inputs(6)
    th.requires_grad_()
    tw.requires_grad_()
    x = h.clone().requires_grad_()
    out = xent_core.loss("linear-kd")(x, w, th, tw, targets=y)
    out.backward()
    assert th.grad is None and tw.grad is None and x.grad is not None
    with torch.no_grad():
        v = xent_core.loss("linear-kd")(h, w, th, tw, targets=y)
    torch.testing.assert_close(v, out.detach())


def test_bfloat16_inputs_compute_in_float32():
    h, w, _b, th, tw, _tb, y = _inputs(7)
    args = [x.bfloat16() for x in (h, w, th, tw)]
    args[0].requires_grad_()
    out = xent_core.loss("linear-kd", chunk_size=16)(*args, targets=y)
    assert out.dtype == torch.float32
    out.backward()
    assert args[0].grad.dtype == torch.bfloat16
    want = xent_core.loss("kd")(
        args[0].detach().double() @ args[1].double().T,
        args[2].double() @ args[3].double().T,
        targets=y,
    )
    assert abs(float(out.detach()) - float(want)) < 1e-4


def test_vocab_align_truncate_matches_sliced_classifiers():
    h, w, _b, th, tw, _tb, y = _inputs(8, torch.float64)
    y = y.clamp(max=200)
    loss = xent_core.loss("linear-kd", vocab_align="truncate")
    got = loss(h, w, th, tw[:240], targets=y)
    torch.testing.assert_close(
        got, xent_core.loss("linear-kd")(h, w[:240], th, tw[:240], targets=y)
    )


# Regression: -inf biases (padded vocabulary entries masked out) match kd / jsd.


MV_N, MV_D, MV_V = 9, 5, 11


def _masked_vocab_inputs():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(MV_N, MV_D, generator=g, dtype=torch.float64)
    w = torch.randn(MV_V, MV_D, generator=g, dtype=torch.float64)
    th = torch.randn(MV_N, MV_D, generator=g, dtype=torch.float64)
    tw = torch.randn(MV_V, MV_D, generator=g, dtype=torch.float64)
    masked = torch.zeros(MV_V, dtype=torch.float64)
    masked[-3:] = float("-inf")  # padded vocabulary rows
    return h, w, th, tw, masked


@pytest.mark.parametrize("name", ["kd", "jsd"])
@pytest.mark.parametrize("side", ["teacher", "both"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_masked_vocab_matches_unfused(name, side, reduction):
    h, w, th, tw, masked = _masked_vocab_inputs()
    b = masked if side == "both" else torch.zeros(MV_V, dtype=torch.float64)
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
