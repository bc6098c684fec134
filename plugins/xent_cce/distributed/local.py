"""Chunked per-shard primitives for the distributed linear cross-entropy.

Everything here works on ONE rank's classifier rows and never materialises more than one chunk of
logits, ``(N, chunk)``. Logits of row ``j`` for token ``i`` are

    z_ij = c * tanh(s * (h_i . w_j + b_j) / c)      (softcap c; without it z_ij = s * (h_i . w_j + b_j))

with ``s = logit_scale``. :class:`ChunkedShardKernel` exposes the same ``logsumexp`` signature as
the registered ``cce-*`` kernels, so :mod:`xent_cce.distributed` can use either: the registered
kernel when there is one, this module otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..torch.chunked import compute_dtype

# Elements of one (N, chunk) logits block; a few such blocks are alive at once in backward.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def transform_logits(raw: torch.Tensor, softcap: float | None, logit_scale: float) -> torch.Tensor:
    """``softcap * tanh(logit_scale * raw / softcap)`` (or ``logit_scale * raw`` without softcap)."""
    z = raw * logit_scale if logit_scale != 1.0 else raw
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


def _chunk_rows(n_tokens: int, n_rows: int, chunk_elements: int) -> int:
    return max(1, min(n_rows, chunk_elements // max(n_tokens, 1)))


def _raw_block(
    h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    raw = h @ w.to(dtype).T
    if b is not None:
        raw = raw + b.to(dtype)
    return raw


def _dlogits_draw(z: torch.Tensor, softcap: float | None, logit_scale: float) -> torch.Tensor:
    """Derivative of the transformed logit w.r.t. the raw one, elementwise (a scalar without softcap)."""
    if softcap is None:
        return torch.full((), logit_scale, dtype=z.dtype, device=z.device)
    t = z / softcap
    return logit_scale * (1.0 - t * t)


def _logits_into(
    flat: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    softcap: float | None,
    logit_scale: float,
) -> torch.Tensor:
    """The (N, rows) logits of one chunk, computed in place in the reusable buffer ``flat``."""
    z = flat[: h.shape[0] * w.shape[0]].view(h.shape[0], w.shape[0])
    torch.mm(h, w.to(h.dtype).T, out=z)
    if b is not None:
        z.add_(b.to(h.dtype))
    if logit_scale != 1.0:
        z.mul_(logit_scale)
    if softcap is not None:
        z.div_(softcap).tanh_().mul_(softcap)
    return z


class _ChunkedLogSumExp(torch.autograd.Function):
    """Row-wise log-sum-exp of ``transform(h @ W.T + b)``, recomputing chunks in backward.

    One ``(N, chunk)`` buffer is reused for every chunk (two in backward with a softcap).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        softcap: float | None,
        logit_scale: float,
        chunk_elements: int,
    ) -> torch.Tensor:
        dtype = compute_dtype(hidden, classifier, bias)
        h = hidden.to(dtype)
        n, v = h.shape[0], classifier.shape[0]
        step = _chunk_rows(n, v, chunk_elements)
        flat = torch.empty(n * step, dtype=dtype, device=h.device)
        lse = torch.full((n,), -math.inf, dtype=dtype, device=h.device)
        for start in range(0, v, step):
            stop = min(start + step, v)
            b = None if bias is None else bias[start:stop]
            z = _logits_into(flat, h, classifier[start:stop], b, softcap, logit_scale)
            shift = z.amax(dim=1)
            chunk_lse = z.sub_(shift[:, None]).exp_().sum(dim=1).log_().add_(shift)
            lse = torch.logaddexp(lse, chunk_lse)
        ctx.save_for_backward(hidden, classifier, bias, lse)
        ctx.softcap, ctx.logit_scale, ctx.step = softcap, logit_scale, step
        return lse

    @staticmethod
    def backward(ctx: Any, grad_lse: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, classifier, bias, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        dtype = lse.dtype
        h = hidden.to(dtype)
        n, v = h.shape[0], classifier.shape[0]
        cap, scale = ctx.softcap, ctx.logit_scale
        # d lse_i / d raw_ij = softmax_ij * dz_ij/draw_ij, times the incoming gradient g_i.
        g = grad_lse.to(dtype)[:, None] * (scale if cap is None else 1.0)
        flat = torch.empty(n * ctx.step, dtype=dtype, device=h.device)
        deriv_flat = torch.empty_like(flat) if cap is not None else None
        d_h = torch.zeros_like(h) if need_h else None
        d_w = torch.empty(classifier.shape, dtype=dtype, device=h.device) if need_w else None
        d_b = torch.empty(v, dtype=dtype, device=h.device) if need_b and bias is not None else None
        for start in range(0, v, ctx.step):
            stop = min(start + ctx.step, v)
            w = classifier[start:stop]
            b = None if bias is None else bias[start:stop]
            z = _logits_into(flat, h, w, b, cap, scale)
            if deriv_flat is not None:  # s * (1 - tanh^2), tanh = z / cap
                deriv = deriv_flat[: z.numel()].view_as(z)
                torch.mul(z, z, out=deriv).mul_(-1.0 / (cap * cap)).add_(1.0).mul_(scale)
                d_raw = z.sub_(lse[:, None]).exp_().mul_(g).mul_(deriv)
            else:
                d_raw = z.sub_(lse[:, None]).exp_().mul_(g)
            if d_h is not None:
                d_h.addmm_(d_raw, w.to(dtype))
            if d_w is not None:
                torch.mm(d_raw.T, h, out=d_w[start:stop])
            if d_b is not None:
                d_b[start:stop] = d_raw.sum(dim=0)
        return (
            None if d_h is None else d_h.to(hidden.dtype),
            None if d_w is None else d_w.to(classifier.dtype),
            None if d_b is None else d_b.to(bias.dtype),
            None,
            None,
            None,
        )


class _ChunkedCappedLogitSum(torch.autograd.Function):
    """Row-wise ``sum_j softcap * tanh(s * raw_ij / softcap)``, recomputing chunks in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        softcap: float,
        logit_scale: float,
        chunk_elements: int,
    ) -> torch.Tensor:
        dtype = compute_dtype(hidden, classifier, bias)
        h = hidden.to(dtype)
        n, v = h.shape[0], classifier.shape[0]
        step = _chunk_rows(n, v, chunk_elements)
        total = torch.zeros(n, dtype=dtype, device=h.device)
        for start in range(0, v, step):
            stop = min(start + step, v)
            b = None if bias is None else bias[start:stop]
            raw = _raw_block(h, classifier[start:stop], b, dtype)
            total += transform_logits(raw, softcap, logit_scale).sum(dim=1)
        ctx.save_for_backward(hidden, classifier, bias)
        ctx.softcap, ctx.logit_scale, ctx.step, ctx.dtype = softcap, logit_scale, step, dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_sum: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, classifier, bias = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        dtype = ctx.dtype
        h = hidden.to(dtype)
        g = grad_sum.to(dtype)[:, None]
        v = classifier.shape[0]
        d_h = torch.zeros_like(h) if need_h else None
        d_w = torch.empty(classifier.shape, dtype=dtype, device=h.device) if need_w else None
        d_b = torch.empty(v, dtype=dtype, device=h.device) if need_b and bias is not None else None
        for start in range(0, v, ctx.step):
            stop = min(start + ctx.step, v)
            w = classifier[start:stop]
            b = None if bias is None else bias[start:stop]
            z = transform_logits(_raw_block(h, w, b, dtype), ctx.softcap, ctx.logit_scale)
            d_raw = _dlogits_draw(z, ctx.softcap, ctx.logit_scale).mul_(g)
            if d_h is not None:
                d_h.addmm_(d_raw, w.to(dtype))
            if d_w is not None:
                d_w[start:stop] = d_raw.T @ h
            if d_b is not None:
                d_b[start:stop] = d_raw.sum(dim=0)
        return (
            None if d_h is None else d_h.to(hidden.dtype),
            None if d_w is None else d_w.to(classifier.dtype),
            None if d_b is None else d_b.to(bias.dtype),
            None,
            None,
            None,
        )


def logit_sum(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Per-token sum of this shard's logits, ``sum_j z_ij`` (N,), differentiable.

    Without softcap it is linear in the logits: ``s * (h . sum_j w_j + sum_j b_j)``, O(N*D).
    With softcap a chunked pass over the rows, recomputed in backward.
    """
    dtype = compute_dtype(hidden, classifier, bias)
    if softcap is None:
        out = hidden.to(dtype) @ classifier.to(dtype).sum(dim=0)
        if bias is not None:
            out = out + bias.to(dtype).sum()
        return out * logit_scale
    return _ChunkedCappedLogitSum.apply(
        hidden, classifier, bias, float(softcap), float(logit_scale), chunk_elements
    )


def target_logits(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    local_ids: torch.Tensor,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
) -> torch.Tensor:
    """``z_{i, local_ids[i]}`` for every token (N,), gathering N rows; ids must be in range.

    The rows are gathered with a sparse-gradient embedding lookup: their gradient is N rows, added
    into the classifier's dense gradient, instead of a second (V, D) buffer.
    """
    dtype = compute_dtype(hidden, classifier, bias)
    rows = torch.nn.functional.embedding(local_ids, classifier, sparse=True).to(dtype)
    raw = (hidden.to(dtype) * rows).sum(dim=1)
    if bias is not None:
        raw = raw + bias.index_select(0, local_ids).to(dtype)
    return transform_logits(raw, softcap, logit_scale)


class ChunkedShardKernel:
    """Built-in chunked local kernel (log-sum-exp only) used when no ``cce-*`` kernel is registered.

    Same ``logsumexp`` signature as the registered kernels; holds at most a few ``(N, chunk)``
    blocks, with ``chunk = chunk_elements // N`` rows.
    """

    name = "xent-distributed-builtin"

    def __init__(self, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> None:
        self.chunk_elements = int(chunk_elements)

    def available(self) -> tuple[bool, str]:
        return True, "pure PyTorch, any device"

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        return _ChunkedLogSumExp.apply(
            hidden,
            classifier,
            bias,
            None if softcap is None else float(softcap),
            float(logit_scale),
            self.chunk_elements,
        )
