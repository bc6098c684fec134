"""A chunked, fused softmax cross-entropy for class-id targets (custom autograd Function).

Used where PyTorch's own ``F.cross_entropy`` has no equivalent or costs more memory: half
precision inputs computed in float32 (``F.cross_entropy`` would round the log-probabilities to
the input dtype, and upcasting first would hold a float32 copy of the logits), logit
soft-capping, temperature and the z-loss. Per row i, with the transformed logits
``z = softcap * tanh(x / softcap) * inv_temp`` and ``lse = logsumexp(z)``::

    ce_i  = a_i * (lse_i - z_{i, y_i}) + b_i * (W * lse_i - sum_k w_k z_ik)

with ``a_i = (1 - eps) w_{y_i}`` and ``b_i = eps / C`` (both 0 on ignored rows) and
``W = sum_k w_k`` (``w = 1`` without class weights). The Function returns ``(ce, lse)`` and
saves only ``lse`` (N,) besides the inputs; the backward pass recomputes the softmax one block
of rows at a time and writes the gradient in the input dtype, so no (N, C) float32 buffer is
ever held (peak extra memory: one block).
"""

from __future__ import annotations

from typing import Any

import torch

_BLOCK_ELEMENTS = 1 << 20  # about 4 MiB of float32 per block


def _rows_per_block(num_classes: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, num_classes))


def _transform(x: torch.Tensor, softcap: float | None, inv_temp: float) -> torch.Tensor:
    """``softcap * tanh(x / softcap) * inv_temp`` in float32/float64 (a new tensor)."""
    z = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if softcap is not None:
        z = torch.tanh(z / softcap).mul_(softcap * inv_temp)
    elif inv_temp != 1.0:
        z = z * inv_temp
    return z


class FusedCrossEntropy(torch.autograd.Function):
    """``(ce, lse)`` per row; see the module docstring for the formula."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        ids: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor | None,
        w: torch.Tensor | None,
        softcap: float | None,
        inv_temp: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, c = x.shape
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        lse = torch.empty(n, dtype=dtype, device=x.device)
        ce = torch.empty(n, dtype=dtype, device=x.device)
        total_w = float(c) if w is None else None
        step = _rows_per_block(c)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            z = _transform(x[r0:r1], softcap, inv_temp)
            lse_blk = torch.logsumexp(z, dim=-1)
            lse[r0:r1] = lse_blk
            z_y = z.gather(1, ids[r0:r1, None]).squeeze(1)
            ce_blk = a[r0:r1] * (lse_blk - z_y)
            if b is not None:
                if w is None:
                    smooth = total_w * lse_blk - z.sum(-1)
                else:
                    smooth = w.sum() * lse_blk - z @ w
                ce_blk = ce_blk + b[r0:r1] * smooth
            ce[r0:r1] = ce_blk
        ctx.save_for_backward(x, ids, a, b, w, lse)
        ctx.softcap, ctx.inv_temp = softcap, inv_temp
        return ce, lse

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_ce: torch.Tensor | None, g_lse: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        x, ids, a, b, w, lse = ctx.saved_tensors
        softcap, inv_temp = ctx.softcap, ctx.inv_temp
        if not ctx.needs_input_grad[0]:
            return (None,) * 7
        n, c = x.shape
        dtype = lse.dtype
        g_ce = torch.zeros(n, dtype=dtype, device=x.device) if g_ce is None else g_ce.to(dtype)
        # d ce_i / d z_ik = (a_i + b_i W) p_ik - a_i [k = y_i] - b_i w_k;  d lse_i / d z_ik = p_ik
        total_w = float(c) if w is None else w.sum()
        coef_p = g_ce * a
        coef_w = None
        if b is not None:
            coef_w = g_ce * b
            coef_p = coef_p + coef_w * total_w
        if g_lse is not None:
            coef_p = coef_p + g_lse.to(dtype)
        coef_y = (g_ce * a).neg()
        grad = torch.empty_like(x)
        same = x.dtype == dtype and softcap is None and inv_temp == 1.0
        step = _rows_per_block(c)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            xb = x[r0:r1]
            if same:  # write the softmax straight into the gradient: no block buffer
                p = torch.sub(xb, lse[r0:r1, None], out=grad[r0:r1])
            else:
                p = _transform(xb, softcap, inv_temp).sub_(lse[r0:r1, None])
            p.exp_().mul_(coef_p[r0:r1, None])
            p.scatter_add_(1, ids[r0:r1, None], coef_y[r0:r1, None])
            if coef_w is not None:
                if w is None:
                    p.sub_(coef_w[r0:r1, None])
                else:
                    p.addr_(coef_w[r0:r1], w, alpha=-1.0)
            if softcap is not None:  # dz/dx = inv_temp * (1 - tanh(x / softcap)^2)
                t = torch.tanh(xb.to(dtype) / softcap)
                p.mul_(t.square_().neg_().add_(1.0).mul_(inv_temp))
            elif inv_temp != 1.0:
                p.mul_(inv_temp)
            if not same:
                grad[r0:r1].copy_(p)
        return grad, None, None, None, None, None, None
