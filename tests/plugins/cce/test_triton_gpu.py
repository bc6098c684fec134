"""``cce-triton`` checks that only make sense natively on a CUDA device.

Skipped, with the reason, on machines without CUDA (the interpreter cannot hold these sizes).
``benchmarks/gpu.sh`` runs them with TRITON_INTERPRET=0.
"""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from xent_cce.triton.kernel import CCETritonKernel  # noqa: E402

ON_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device with TRITON_INTERPRET unset"),
]


def _free_gib() -> float:
    free, _ = torch.cuda.mem_get_info()
    return free / 2**30


def _reference_rows(h, c, t, rows):
    """fp32 loss, lse and d_hidden of the mean loss for a few ``rows`` (full vocabulary)."""
    hh = h[rows].detach().float().requires_grad_()
    y = hh @ c.detach().float().T
    lse = torch.logsumexp(y, dim=-1)
    per = lse - y.gather(1, t[rows][:, None])[:, 0]
    (dh,) = torch.autograd.grad(per.sum() / h.shape[0], hh)
    return per.detach(), lse.detach(), dh


def test_hidden_offsets_beyond_int32():
    """N * D > 2**31: rows of hidden past element 2**31 are read and written correctly."""
    n, d, v = 540_000, 4096, 257
    assert n * d > 2**31
    if _free_gib() < 24:
        pytest.skip("needs about 24 GiB of free GPU memory")
    gen = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(n, d, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_()
    c = (torch.randn(v, d, device="cuda", generator=gen) / math.sqrt(d)).to(torch.bfloat16)
    t = torch.randint(0, v, (n,), device="cuda", generator=gen)
    loss, lse = CCETritonKernel().linear_cross_entropy(h, c, t, reduction="none")
    (dh,) = torch.autograd.grad(loss.sum() / n, h)
    tail = torch.arange(n - 300, n, device="cuda")
    ref_loss, ref_lse, ref_dh = _reference_rows(h, c, t, tail)
    torch.testing.assert_close(lse[tail], ref_lse, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(loss[tail].float(), ref_loss, rtol=1e-4, atol=1e-3)
    scale = ref_dh.abs().max().item()
    torch.testing.assert_close(dh[tail].float(), ref_dh, rtol=2e-2, atol=1e-2 * scale)


def test_classifier_offsets_beyond_int32():
    """V * D > 2**31: classifier rows past element 2**31 get their logits and gradients."""
    n, d, v = 96, 4096, 540_000
    assert v * d > 2**31
    if _free_gib() < 24:
        pytest.skip("needs about 24 GiB of free GPU memory")
    gen = torch.Generator(device="cuda").manual_seed(1)
    h = torch.randn(n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    c = (torch.randn(v, d, device="cuda", generator=gen) / math.sqrt(d)).to(torch.bfloat16)
    c.requires_grad_()
    t = torch.randint(v - 1000, v, (n,), device="cuda", generator=gen)  # targets in the far rows
    loss, lse = CCETritonKernel().linear_cross_entropy(h, c, t, reduction="sum")
    (dc,) = torch.autograd.grad(loss, c)
    y = h.float() @ c.detach().float().T
    ref_lse = torch.logsumexp(y, dim=-1)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(
        loss.float(), (ref_lse - y.gather(1, t[:, None])[:, 0]).sum(), rtol=1e-4, atol=1e-2
    )
    tail = slice(v - 1000, v)
    p = torch.exp(y[:, tail] - ref_lse[:, None])
    onehot = torch.nn.functional.one_hot(t - (v - 1000), 1000).float()
    ref_dc = (p - onehot).T @ h.float()
    scale = ref_dc.abs().max().item()
    torch.testing.assert_close(dc[tail].float(), ref_dc, rtol=2e-2, atol=1e-2 * scale)


@pytest.mark.parametrize("accumulate", ["fp32", "input"])
def test_bf16_llm_like_shape_with_auto_filter(accumulate):
    """A mid-size bf16 problem with a peaked softmax, the auto filter and both accumulations,
    against an fp32 reference and against naive bf16 PyTorch."""
    n, d, v = 2048 + 3, 1024 + 16, 32_000 + 7
    gen = torch.Generator(device="cuda").manual_seed(2)
    h = torch.randn(n, d, device="cuda", generator=gen)
    c = torch.randn(v, d, device="cuda", generator=gen) / math.sqrt(d)
    t = torch.randint(0, v, (n,), device="cuda", generator=gen)
    h = h + 4.0 * c[t] * math.sqrt(d) / c[t].norm(dim=-1, keepdim=True)  # targets dominate
    h = h.to(torch.bfloat16).requires_grad_()
    c = c.to(torch.bfloat16).requires_grad_()
    loss, _ = CCETritonKernel(accumulate=accumulate).linear_cross_entropy(
        h, c, t, filter_eps="auto"
    )
    ours = torch.autograd.grad(loss, [h, c])

    def naive(hh, cc):
        return torch.nn.functional.cross_entropy((hh @ cc.T).float(), t)

    f32 = [x.detach().float().requires_grad_() for x in (h, c)]
    ref_loss = naive(*f32)
    ref = torch.autograd.grad(ref_loss, f32)
    lo = [x.detach().clone().requires_grad_() for x in (h, c)]
    lo_loss = torch.nn.functional.cross_entropy(lo[0] @ lo[1].T, t)
    lo_g = torch.autograd.grad(lo_loss, lo)
    assert abs(loss.item() - ref_loss.item()) <= abs(lo_loss.item() - ref_loss.item()) + 1e-3
    slack = 1.0 if accumulate == "fp32" else 4.0
    for o, r, l in zip(ours, ref, lo_g):
        err = (o.float() - r).abs().max().item()
        base = (l.float() - r).abs().max().item()
        assert err <= slack * base + 8e-3 * r.abs().max().item(), (accumulate, err, base)
