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
gradients. In eager mode the ``jsd`` blocks go through the fused rows of ``jsd`` itself
(:func:`._fused.block_rows`: one log-ratio expression, cache-sized blocks, the gradient written
over the student block); only rows that come out non-finite are redone by the general block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from xent_core import BadInputError

from ._fused import Rule, block_rows, jsd_rule
from ._inputs import as_rows, check_lead, check_num_items, checks_on, compute_dtype, target_mask
from ._reduce import denominator
from .functional import generalized_jsd, log_mix_ratio


class Spec(NamedTuple):
    """What to compute: ``kind`` is ``"kd"`` or ``"jsd"``."""

    kind: str
    temperature: float
    softcap: float | None
    scale: float = 1.0
    beta: float = 0.5
    normalize: bool = True
    chunk_size: int | None = None


CHUNK_ELEMENTS = 1 << 23
"""Default logits elements per ``(chunk, V)`` block: 256 tokens at V = 32768, 65 at V = 128256.
A few such blocks (32 MiB each in float32) are alive at once, whatever the vocabulary."""


def rows_per_chunk(spec: Spec, vocab: int) -> int:
    """``spec.chunk_size``, or the vocabulary-aware default (``CHUNK_ELEMENTS // V``)."""
    if spec.chunk_size is not None:
        return spec.chunk_size
    return max(1, CHUNK_ELEMENTS // max(vocab, 1))


def _tempered_logits(
    h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, spec: Spec
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(u, tanh)`` with ``u = cap(h W^T + b) / T``; ``tanh(z / c)`` is kept for the chain rule.

    Without a softcap the temperature is folded into the small ``(chunk, D)`` operand, so the
    ``(chunk, V)`` block is touched only by the matmul.
    """
    inv_t = 1.0 / spec.temperature
    if spec.softcap is None:
        hs = h * inv_t if inv_t != 1.0 else h
        if b is None:
            return hs @ w.T, None
        return torch.addmm(b * inv_t if inv_t != 1.0 else b, hs, w.T), None
    z = h @ w.T if b is None else torch.addmm(b, h, w.T)
    th = z.div_(spec.softcap).tanh_()
    return th * (spec.softcap * inv_t), th


def _softmax_stats(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row max ``m``, ``e = exp(u - m)`` (a new block) and its row sums ``s``."""
    m = u.amax(-1, keepdim=True)
    e = torch.sub(u, m).exp_()
    return m, e, e.sum(-1, keepdim=True)


def _zero_nan(x: torch.Tensor) -> torch.Tensor:
    """Replace NaN by 0 in place, keeping +-inf (they carry true infinite values)."""
    return x.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))


def _kd_block(
    make_ut: Callable[[], torch.Tensor],
    make_us: Callable[[], torch.Tensor],
    spec: Spec,
    row_factor: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """KD on one block with at most three ``(chunk, V)`` blocks alive.

    ``KL(p || q) = sum_c p_c (u'_t,c - u'_s,c) + log s_s - log s_t`` with shifted logits
    ``u' = u - max u``, ``p = exp(u'_t) / s_t``: the teacher block is reduced to its row sums
    before the student block is formed. Returns values, the teacher's and the student's
    log-partitions and, if ``row_factor`` is given, ``d(sum_i f_i L_i)/du_s = f * scale * (q - p)``.
    """
    ut = make_ut()
    m_t = ut.amax(-1, keepdim=True)
    e_t = ut.sub_(m_t).exp()
    s_t = e_t.sum(-1, keepdim=True)
    # -inf logits (masked vocabulary entries) have p = 0: their 0 * (-inf) = NaN terms count 0
    cross_t = _zero_nan(ut.mul_(e_t)).sum(-1, keepdim=True)
    del ut
    us = make_us()
    m_s = us.amax(-1, keepdim=True)
    e_s = us.sub_(m_s).exp()
    s_s = e_s.sum(-1, keepdim=True)
    cross_s = _zero_nan(us.mul_(e_t)).sum(-1, keepdim=True)
    del us
    log_s_t, log_s_s = s_t.log(), s_s.log()
    values = ((cross_t - cross_s) / s_t + (log_s_s - log_s_t)).squeeze(-1) * spec.scale
    lse_t, lse_s = (m_t + log_s_t).squeeze(-1), (m_s + log_s_s).squeeze(-1)
    if row_factor is None:
        return values, lse_t, lse_s, None
    f = row_factor[:, None] * spec.scale
    return values, lse_t, lse_s, e_s.mul_(f / s_s).sub_(e_t.mul_(f / s_t))


def _block(
    us: torch.Tensor, ut: torch.Tensor, spec: Spec, row_factor: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One JSD block: per-row values, the teacher's and the student's per-row log-partitions
    (for the finiteness checks) and, if ``row_factor`` is given, ``d(sum_i f_i L_i)/du_s``. Consumes ``us``, ``ut``."""
    m_s, e_s, s_s = _softmax_stats(us)
    m_t, e_t, s_t = _softmax_stats(ut)
    log_s_s, log_s_t = s_s.log(), s_t.log()
    lse_t, lse_s = (m_t + log_s_t).squeeze(-1), (m_s + log_s_s).squeeze(-1)
    ls = us.sub_(m_s).sub_(log_s_s)
    lt = ut.sub_(m_t).sub_(log_s_t)
    values = generalized_jsd(lt, ls, spec.beta, spec.normalize)
    if row_factor is None:
        return values, lse_t, lse_s, None
    beta = spec.beta
    q = e_s.div_(s_s)
    if beta <= 0.0 or beta >= 1.0:
        if not spec.normalize:
            return values, lse_t, lse_s, torch.zeros_like(q)
        if beta <= 0.0:
            return values, lse_t, lse_s, q.sub_(e_t.div_(s_t)).mul_(row_factor[:, None])
        gq = ls.sub_(lt)  # reverse KL: d/dq_c = log(q_c / p_c) + 1 (the constant cancels)
    else:
        gq = log_mix_ratio(lt.sub_(ls), beta)  # log(m / q)
        gq.mul_(-1.0 / beta if spec.normalize else -(1.0 - beta))
    gq.masked_fill_(q == 0, 0.0)  # classes the student rules out: q * g is 0, not 0 * inf
    mean_g = (q * gq).sum(-1, keepdim=True)
    return values, lse_t, lse_s, gq.sub_(mean_g).mul_(q).mul_(row_factor[:, None])


def _fused_rule(spec: Spec) -> Rule | None:
    """The fused rows' rule of a ``jsd`` spec (eager; None: the general block)."""
    if spec.kind != "jsd" or torch.compiler.is_compiling():
        return None
    rule = jsd_rule(spec.beta, spec.normalize, 1.0)  # the blocks are tempered already
    return None if rule.kind == "zero" else rule


def _fused_block(
    us: torch.Tensor, ut: torch.Tensor, rule: Rule, row_factor: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Values, ``d(sum_i f_i L_i)/du_s`` (in ``us``'s memory) and the rows to redo (or None).

    The fused rows of ``jsd`` (:func:`._fused.block_rows`: one log-ratio expression, the
    gradient in closed form, cache-sized blocks); a row it cannot do (a class one side rules
    out, NaN or inf logits) comes out non-finite and is redone by :func:`_block`, which also
    checks it.
    """
    values = block_rows(rule, us, ut, row_factor)
    bad = ~torch.isfinite(values)
    redo = bad.nonzero().squeeze(-1) if bool(bad.any()) else None
    return values, (us if row_factor is not None else None), redo


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
    check = checks_on()
    dtype = compute_dtype(h)
    wc = w.to(dtype)
    bc = None if b is None else b.to(dtype)
    twc = tw.to(dtype)
    tbc = None if tb is None else tb.to(dtype)
    n = h.shape[0]
    values = torch.empty(n, dtype=dtype, device=h.device)
    finite = torch.ones(2, dtype=torch.bool, device=h.device)  # (teacher, student) log-partitions
    gh = torch.empty(n, h.shape[1], dtype=dtype, device=h.device) if want_grad else None
    gw = torch.zeros_like(wc) if want_grad else None
    gb = torch.zeros_like(bc) if (want_grad and bc is not None) else None
    inv_t = 1.0 / spec.temperature
    step = rows_per_chunk(spec, w.shape[0])
    rule = _fused_rule(spec)
    for start in range(0, n, step):
        end = min(start + step, n)
        hc = h[start:end].to(dtype)
        thc = th[start:end].to(dtype)
        # du/dz = 1/T, so the row factor carries the 1/T of the chain rule
        factor = None
        if want_grad:
            assert row_weight is not None
            factor = row_weight[start:end].to(dtype) * inv_t
        tanh_s: list[torch.Tensor | None] = [None]

        def student(hc: torch.Tensor = hc, keep: list = tanh_s) -> torch.Tensor:
            u, keep[0] = _tempered_logits(hc, wc, bc, spec)
            return u

        def teacher(thc: torch.Tensor = thc) -> torch.Tensor:
            return _tempered_logits(thc, twc, tbc, spec)[0]

        if spec.kind == "kd":
            v, lse_t, lse_s, g = _kd_block(teacher, student, spec, factor)
        elif rule is not None:
            v, g, redo = _fused_block(student(), teacher(), rule, factor)
            if redo is not None:  # the rows the fused expression cannot do: the general block
                v_r, lse_t, lse_s, g_r = _block(
                    student(hc[redo], [None]),
                    teacher(thc[redo]),
                    spec,
                    None if factor is None else factor[redo],
                )
                v[redo] = v_r
                if g is not None:
                    g[redo] = g_r
                if check:
                    finite &= torch.stack(
                        [torch.isfinite(lse_t).all(), torch.isfinite(lse_s).all()]
                    )
        else:
            v, lse_t, lse_s, g = _block(student(), teacher(), spec, factor)
        values[start:end] = v
        if check and rule is None:
            finite &= torch.stack([torch.isfinite(lse_t).all(), torch.isfinite(lse_s).all()])
        if g is None:
            continue
        assert gh is not None and gw is not None
        if tanh_s[0] is not None:  # d cap(z) / dz = 1 - tanh^2
            g.mul_(tanh_s[0].square_().neg_().add_(1.0))
        gh[start:end] = g @ wc
        gw.addmm_(g.T, hc)
        if gb is not None:
            gb.add_(g.sum(0))
    if check and not bool(finite.all()):
        side = "teacher" if not bool(finite[0]) else "student"
        which = (
            "teacher_hidden @ teacher_classifier^T + teacher_bias"
            if side == "teacher"
            else ("hidden @ classifier^T + bias")
        )
        raise BadInputError(
            f"the {side} logits ({which}) contain NaN or inf, or a row that is entirely -inf "
            "(finite inputs whose logits overflow, or a fully masked vocabulary)"
        )
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
            # usually 1 (a loss's backward): skip a V x D pass (not when traced: a host read)
            if torch.compiler.is_compiling() or float(grad_out) != 1.0:
                gh, gw = gh * grad_out, gw * grad_out
                gb = None if gb is None else gb * grad_out
            out_h, out_w = gh.to(dh), gw.to(dw)
            out_b = None if gb is None else gb.to(db)
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
    shift: bool = False,
) -> torch.Tensor:
    """Validate, flatten, drop ignored rows, and run the chunked function.

    ``shift``: next-token alignment as in ``linear-cross-entropy``: position ``t`` counts when
    ``targets[..., t + 1]`` is not ignored, the last position never (the hidden states are used
    as they are; without targets only the last position is dropped).
    """
    h, lead = as_rows("hidden", hidden)
    th, t_lead = as_rows("teacher_hidden", teacher_hidden)
    check_lead("teacher_hidden", t_lead, lead, "hidden")
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
    check_num_items(num_items)
    if checks_on():
        _check_student(h, classifier, bias)
    n = h.shape[0]
    valid = target_mask(targets, lead, ignore_index, classifier.shape[0], h.device, shift=shift)
    compiling = torch.compiler.is_compiling()
    idx = None
    if valid is not None and not compiling and not bool(valid.all()):
        idx = valid.nonzero().squeeze(-1)  # drop ignored rows (eager: a data-dependent shape)
        h, th = h.index_select(0, idx), th.index_select(0, idx)
    want_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (h, w, b)
    )
    dtype = compute_dtype(h)
    if reduction == "none":
        rows = _LinearDistill.apply(h, w, b, th, tw, tb, None, spec, want_grad)
        if idx is not None:
            rows = torch.zeros(n, dtype=rows.dtype, device=rows.device).index_put((idx,), rows)
        elif valid is not None:  # compiled: every row was computed, the ignored ones count 0
            rows = torch.where(valid, rows, torch.zeros_like(rows))
        return rows.reshape(lead)
    weight = torch.ones(h.shape[0], dtype=dtype, device=h.device)
    if idx is None and valid is not None:
        weight = weight * valid.to(dtype)
    if reduction == "mean":
        weight = weight / denominator(
            valid, n, num_items, torch.empty((), dtype=dtype, device=h.device)
        )
    return _LinearDistill.apply(h, w, b, th, tw, tb, weight, spec, want_grad)


def _check_student(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> None:
    """NaN/inf in the student's hidden states or classifier, NaN/+inf in its bias (``-inf``
    masks a vocabulary entry): an error, as for the teacher."""
    for name, x in (("hidden", h), ("classifier", w)):
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise BadInputError(f"{name} contains NaN or inf values; the student must be finite")
    if b is not None and b.numel() and not bool((b < float("inf")).all()):
        raise BadInputError("bias contains NaN or +inf values (-inf masks a vocabulary entry)")
