"""Chunked linear distillation: student and teacher logits one block of tokens at a time.

For each block of ``chunk_size`` tokens the student logits ``h W^T + b`` and the teacher logits
``h_t W_t^T + b_t`` are formed, soft-capped (``c * tanh(z / c)``) and tempered, the per-token
divergence and its gradient with respect to the student logits are computed in closed form, and
the gradient is pushed through the classifier at once (``dh = G W``, ``dW += G^T h``,
``db += sum G``). Neither ``(N, V)`` matrix ever exists: peak extra memory is a few ``(chunk, V)``
blocks. The gradients are computed in the forward pass when the row weights are known
(``mean``/``sum``; backward only rescales them); for ``reduction="none"`` the forward returns
per-token values and the backward recomputes each block with the incoming per-token weights.

Closed-form gradients with respect to the tempered student logits ``u = z_s / T``, with
``q = softmax(u)``, ``p`` the teacher and ``g_c`` the derivative with respect to ``q_c``:
``dL/du = q * (g - sum_c q_c g_c)``. For ``scale * KL(p || q)`` this is ``scale * (q - p)``;
for the generalized JSD, ``g = -(1 - beta) log(m / q)`` (raw) or ``-log(m / q) / beta``
(normalised), ``m = beta p + (1 - beta) q``; its end points are the forward and reverse KL
gradients.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from xent_core import BadInputError

from . import _common as C
from .functional import generalized_jsd, log_mix_ratio


class Spec(NamedTuple):
    """What to compute: ``kind`` is ``"kd"`` or ``"jsd"``."""

    kind: str
    temperature: float
    softcap: float | None
    scale: float = 1.0
    beta: float = 0.5
    normalize: bool = True
    chunk_size: int = 256


def _capped_logits(
    h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z, tanh)``: soft-capped logits and, with a softcap, ``tanh(z_raw / c)`` for the chain rule."""
    z = h @ w.T
    if b is not None:
        z.add_(b)
    if softcap is None:
        return z, None
    th = z.div_(softcap).tanh_()
    return th * softcap, th


def _log_softmax_(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-place ``log_softmax(z / T)``."""
    if temperature != 1.0:
        z.div_(temperature)
    z.sub_(z.amax(-1, keepdim=True))  # shift first: z - lse then keeps full precision
    return z.sub_(torch.logsumexp(z, -1, keepdim=True))


def _block(
    zs: torch.Tensor, zt: torch.Tensor, spec: Spec, want_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row values and (optionally) ``dL/dz_s`` of one block; consumes ``zs`` and ``zt``."""
    ls = _log_softmax_(zs, spec.temperature)
    lt = _log_softmax_(zt, spec.temperature)
    if spec.kind == "kd":
        p = torch.exp(lt)
        # KL(p || q) = sum p (log p - log q), formed in place in lt (no extra block)
        values = lt.sub_(ls).mul_(p).sum(-1)
        g = ls.exp_().sub_(p).mul_(spec.scale / spec.temperature) if want_grad else None
        return values * spec.scale, g
    values = generalized_jsd(lt, ls, spec.beta, spec.normalize)
    if not want_grad:
        return values, None
    beta = spec.beta
    q = ls.exp()
    if beta <= 0.0 or beta >= 1.0:
        if not spec.normalize:
            return values, torch.zeros_like(q)
        if beta <= 0.0:
            return values, q.sub_(lt.exp_()).div_(spec.temperature)
        gq = ls - lt  # reverse KL: d/dq_c = log(q_c / p_c) + 1 (the constant cancels)
    else:
        log_m_over_q = log_mix_ratio(lt - ls, beta)
        gq = log_m_over_q.mul_(-1.0 / beta if spec.normalize else -(1.0 - beta))
    mean_g = (q * gq).sum(-1, keepdim=True)
    return values, gq.sub_(mean_g).mul_(q).div_(spec.temperature)


def _run(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    th: torch.Tensor,
    tw: torch.Tensor,
    tb: torch.Tensor | None,
    spec: Spec,
    row_weight: torch.Tensor | None,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Values ``(N,)`` and, if ``want_grad``, the gradients of ``sum_i row_weight_i * value_i``."""
    dtype = C.compute_dtype(h)
    wc = w.to(dtype)
    bc = None if b is None else b.to(dtype)
    twc = tw.to(dtype)
    tbc = None if tb is None else tb.to(dtype)
    n = h.shape[0]
    values = torch.empty(n, dtype=dtype, device=h.device)
    gh = torch.empty(n, h.shape[1], dtype=dtype, device=h.device) if want_grad else None
    gw = torch.zeros_like(wc) if want_grad else None
    gb = torch.zeros_like(bc) if (want_grad and bc is not None) else None
    step = spec.chunk_size
    for start in range(0, n, step):
        end = min(start + step, n)
        hc = h[start:end].to(dtype)
        zs, tanh_s = _capped_logits(hc, wc, bc, spec.softcap)
        zt, _ = _capped_logits(th[start:end].to(dtype), twc, tbc, spec.softcap)
        v, g = _block(zs, zt, spec, want_grad)
        values[start:end] = v
        del zs, zt
        if not want_grad:
            continue
        assert g is not None and gh is not None and gw is not None and row_weight is not None
        if tanh_s is not None:
            g.mul_(tanh_s.square_().neg_().add_(1.0))
        g.mul_(row_weight[start:end, None].to(dtype))
        gh[start:end] = g @ wc
        gw.addmm_(g.T, hc)
        if gb is not None:
            gb.add_(g.sum(0))
    return values, gh, gw, gb


class _LinearDistill(torch.autograd.Function):
    """``(h, W, b, teacher...) -> sum_i w_i L_i`` (row weights given) or ``(L_i)`` (none)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        h: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        th: torch.Tensor,
        tw: torch.Tensor,
        tb: torch.Tensor | None,
        row_weight: torch.Tensor | None,
        spec: Spec,
        want_grad: bool,
    ) -> torch.Tensor:
        ctx.spec = spec
        ctx.b_is_none = b is None
        if row_weight is not None:
            values, gh, gw, gb = _run(h, w, b, th, tw, tb, spec, row_weight, want_grad)
            ctx.mode = "scaled"
            ctx.save_for_backward(gh, gw, gb)
            ctx.dtypes = (h.dtype, w.dtype, None if b is None else b.dtype)
            return (values * row_weight.to(values.dtype)).sum()
        values, *_ = _run(h, w, b, th, tw, tb, spec, None, False)
        ctx.mode = "rows"
        ctx.save_for_backward(h, w, b, th, tw, tb)
        return values

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.mode == "scaled":
            gh, gw, gb = ctx.saved_tensors
            if gh is None:
                raise RuntimeError("linear distillation ran without gradients (no_grad forward)")
            dh, dw, db = ctx.dtypes
            out_h = (gh * grad_out).to(dh)
            out_w = (gw * grad_out).to(dw)
            out_b = None if gb is None else (gb * grad_out).to(db)
        else:
            h, w, b, th, tw, tb = ctx.saved_tensors
            _, gh, gw, gb = _run(h, w, b, th, tw, tb, ctx.spec, grad_out, True)
            assert gh is not None and gw is not None
            out_h, out_w = gh.to(h.dtype), gw.to(w.dtype)
            out_b = None if gb is None else gb.to(b.dtype)
        return out_h, out_w, out_b, None, None, None, None, None, None


def _matrix(name: str, x: object, dims: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise BadInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise BadInputError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != dims:
        raise BadInputError(f"{name} must have {dims} dimension(s), got shape {tuple(x.shape)}")
    return x


def linear_distill(
    spec: Spec,
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_classifier: torch.Tensor,
    targets: torch.Tensor | None,
    bias: torch.Tensor | None,
    teacher_bias: torch.Tensor | None,
    num_items: int | float | torch.Tensor | None,
    *,
    ignore_index: int,
    reduction: str,
    vocab_align: str,
) -> torch.Tensor:
    """Validate, flatten, drop ignored rows, and run the chunked function."""
    h, lead = C.as_rows("hidden", hidden)
    th, t_lead = C.as_rows("teacher_hidden", teacher_hidden)
    C.check_lead("teacher_hidden", t_lead, lead, "hidden")
    w = _matrix("classifier", classifier, 2)
    tw = _matrix("teacher_classifier", teacher_classifier, 2).detach()
    if w.shape[1] != h.shape[1]:
        raise BadInputError(
            f"classifier is {tuple(w.shape)} but hidden has D={h.shape[1]}; expected (V, {h.shape[1]})"
        )
    if tw.shape[1] != th.shape[1]:
        raise BadInputError(
            f"teacher_classifier is {tuple(tw.shape)} but teacher_hidden has D={th.shape[1]}; "
            f"expected (V, {th.shape[1]})"
        )
    b = None if bias is None else _matrix("bias", bias, 1)
    tb = None if teacher_bias is None else _matrix("teacher_bias", teacher_bias, 1).detach()
    if b is not None and b.shape[0] != w.shape[0]:
        raise BadInputError(f"bias has {b.shape[0]} entries, classifier has V={w.shape[0]}")
    if tb is not None and tb.shape[0] != tw.shape[0]:
        raise BadInputError(
            f"teacher_bias has {tb.shape[0]} entries, teacher_classifier has V={tw.shape[0]}"
        )
    if w.shape[0] != tw.shape[0]:
        if vocab_align != "truncate":
            raise BadInputError(
                f"student classifier has V={w.shape[0]} but teacher_classifier has "
                f"V={tw.shape[0]}; the vocabularies must match (or pass vocab_align='truncate')"
            )
        v = min(w.shape[0], tw.shape[0])
        w, tw = w[:v], tw[:v]
        b = None if b is None else b[:v]
        tb = None if tb is None else tb[:v]
    th = th.detach()
    if not bool(torch.isfinite(th).all()) or not bool(torch.isfinite(tw).all()):
        raise BadInputError("teacher_hidden / teacher_classifier contain NaN or inf")
    C.check_num_items(num_items)
    n = h.shape[0]
    valid = C.valid_rows(targets, n, lead, ignore_index, h.device)
    idx = None
    if valid is not None and not bool(valid.all()):
        idx = valid.nonzero().squeeze(-1)
        h, th = h.index_select(0, idx), th.index_select(0, idx)
    want_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (h, w, b)
    )
    if reduction == "none":
        rows = _LinearDistill.apply(h, w, b, th, tw, tb, None, spec, want_grad)
        if idx is not None:
            rows = torch.zeros(n, dtype=rows.dtype, device=rows.device).index_put((idx,), rows)
        return rows.reshape(lead)
    dtype = C.compute_dtype(h)
    if reduction == "sum":
        weight = torch.ones(h.shape[0], dtype=dtype, device=h.device)
    else:
        denom = C.denominator(valid, n, num_items, torch.empty((), dtype=dtype, device=h.device))
        weight = torch.ones(h.shape[0], dtype=dtype, device=h.device) / denom
    return _LinearDistill.apply(h, w, b, th, tw, tb, weight, spec, want_grad)
