"""Float64 reference of linear cross-entropy and the tolerance rule of GUIDE section 2.

The reference is written from log-softmax, independently of xent_cce's ``lse - z_y`` algebra:

    z = softcap * tanh(s * (h @ W.T + b) / softcap)
    l_i = (1 - eps) * (-log p_i,y) + eps * mean_j(-log p_ij) + lambda * logsumexp(z_i)^2
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the "small tolerance" of the rule, relative to the largest reference value
SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-10}


def logits(h, w, b=None, *, softcap=None, logit_scale=1.0):
    z = F.linear(h, w, b) * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


def reference_lce(
    h,
    w,
    y,
    b=None,
    *,
    ignore_index=-100,
    reduction="mean",
    softcap=None,
    logit_scale=1.0,
    label_smoothing=0.0,
    z_loss=0.0,
):
    """Linear cross-entropy from materialised logits, in the dtype of ``h`` (use float64)."""
    z = logits(h, w, b, softcap=softcap, logit_scale=logit_scale)
    logp = torch.log_softmax(z, dim=-1)
    valid = y != ignore_index
    ys = torch.where(valid, y, torch.zeros_like(y))
    nll = -logp.gather(-1, ys[:, None]).squeeze(-1)
    per = (1 - label_smoothing) * nll + label_smoothing * (-logp.mean(-1))
    if z_loss:
        per = per + z_loss * torch.logsumexp(z, dim=-1) ** 2
    per = torch.where(valid, per, torch.zeros_like(per))
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / valid.sum().clamp_min(1)


def make_case(n, d, v, dtype=torch.float32, *, bias=False, ignore_every=0, seed=0, scale=None):
    """Random inputs of ``dtype`` (hidden ~ N(0,1), classifier ~ N(0, scale^2/D))."""
    g = torch.Generator().manual_seed(seed)
    scale = 2.0 if scale is None else scale
    h = torch.randn(n, d, generator=g)
    w = torch.randn(v, d, generator=g) * (scale / d**0.5)
    b = torch.randn(v, generator=g) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        y[::ignore_every] = -100
    cast = (
        (lambda t: None if t is None else t.to(dtype)) if dtype != torch.float32 else (lambda t: t)
    )
    return cast(h), cast(w), cast(b), y


def leaves(*tensors):
    return [None if t is None else t.detach().clone().requires_grad_() for t in tensors]


def max_err(got, ref):
    return (
        float((got.detach().double() - ref.detach().double()).abs().max()) if ref.numel() else 0.0
    )


def assert_rule(name, got, ref64, torch_own, dtype):
    """Error vs float64 <= PyTorch's own error in ``dtype`` + slack * max|ref|."""
    scale = float(ref64.detach().abs().max()) if ref64.numel() else 0.0
    bound = max_err(torch_own, ref64) + SLACK[dtype] * max(scale, 1e-30)
    err = max_err(got, ref64)
    assert err <= bound, f"{name}: error {err:.3e} > bound {bound:.3e} ({dtype})"
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
