"""Fused per-row divergences against full teacher logits: one pass over blocks of rows.

For each block of rows the student and teacher log-softmaxes at temperature ``T`` are formed,
then the divergence of every row and its gradient with respect to the student logits, in closed
form. Only that gradient, ``(N, C)`` in the logits' dtype, is kept for the backward, which scales
it by the incoming per-row weights; autograd through the formula would keep four to eight
``(N, C)`` tensors instead. ``tvd`` keeps nothing of size ``(N, C)``: its blocks (two fused
softmaxes and a difference) are cheap enough to redo in the backward, which then writes the
weighted gradient once. Rows are independent, so the blocks are small (``_BLOCK_ELEMENTS``), and
their buffers are allocated once per call and reused (fresh block temporaries cost page faults).

With ``u = s / T``, ``q = softmax(u)`` and ``g_c = dL/dq_c``, ``dL/du = q * (g - sum_c q_c g_c)``:

- ``kl`` (``kd``): ``L = KL(p || q)``, ``dL/du = q - p``.
- ``reverse-kl``: ``L = KL(q || p)``, ``dL/du = q * (log(q/p) - L)``.
- ``mix``: ``m = w p + (1 - w) q`` and ``L = a KL(p || m) + b KL(q || m)``; the generalized JSD
  (``a/b = w/(1-w)``, then ``g = -b log(m/q)`` up to a constant), ``skew-kl`` (``b = 0``,
  ``g = -(1 - w) p/m``) and ``skew-reverse-kl`` (``a = 0``, ``g = -log(m/q) - (1 - w) q/m``).
- ``tvd``: ``L = sum |p - q| / 2``, ``g = sign(q - p) / 2``.
- ``dkd``: ``a TCKD + b NCKD`` around the class ids ``y`` (see :func:`_dkd_block`).

The mixture's log-ratios use one expression: with ``d = log(p/q)``, ``log(m/q) =
log1p(w expm1(d))`` when ``w <= 1/2``, else ``log(m/p) = log1p((1 - w) expm1(-d))``, so the small
weight always multiplies, which keeps full relative precision near either end of [0, 1]. That
expression is exact for every finite ``d`` whose ``expm1`` does not overflow; the rare rows it
cannot do (a ratio beyond ``exp(88)`` in float32, a class one side rules out with ``-inf``, NaN
inputs) come out non-finite, and only those rows are recomputed by the general masked formulas
of :mod:`.functional` (a per-row choice of precision branch, found by a check over ``N`` values
instead of both branches evaluated on ``N x C``). The same recomputation raises on NaN or
``+inf`` inputs when the input checks are on, so the checks cost nothing on clean data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from xent_core import BadInputError

from ._inputs import checks_on

General = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""``general(lp, lq, y)``: the same values by the general masked formulas (``y``: class ids)."""

_BLOCK_ELEMENTS = 1 << 18  # elements per (rows, C) block: ~1 MiB in float32


def _rows_per_block(n: int, c: int) -> int:
    """Rows of one (rows, C) block of about ``_BLOCK_ELEMENTS`` entries (at least 1)."""
    return max(1, min(n, _BLOCK_ELEMENTS // max(c, 1)))


class Rule(NamedTuple):
    """What to compute per row: ``kind`` in ``kl``, ``reverse-kl``, ``mix``, ``tvd``, ``dkd``,
    ``zero``.

    ``mix`` is ``a KL(p || m) + b KL(q || m)`` with ``m = w p + (1 - w) q`` and ``0 < w < 1``;
    ``dkd`` is ``a TCKD + b NCKD`` around the class ids ``y``.
    ``scale`` multiplies every value (``kd``'s ``T^2``).
    """

    kind: str
    temperature: float = 1.0
    scale: float = 1.0
    w: float = 0.5
    a: float = 0.0
    b: float = 0.0


def _log_ratios(lp: torch.Tensor, lq: torch.Tensor, w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log(m/q), log(m/p))`` for ``m = w p + (1 - w) q``; the small weight multiplies.

    Overwrites ``lq`` and ``lp``: the two results are those two buffers (in some order)."""
    d = torch.sub(lp, lq, out=lq)
    if w <= 0.5:
        r = torch.expm1(d, out=lp).mul_(w).log1p_()
        return r, d.neg_().add_(r)
    s = torch.expm1(torch.neg(d, out=lp), out=lp).mul_(1.0 - w).log1p_()
    return d.add_(s), s


def _project(q: torch.Tensor, g: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """``q * (g - sum_c q_c g_c)`` in place of ``g`` (``tmp``: a free buffer like ``q``)."""
    return g.sub_(torch.mul(q, g, out=tmp).sum(-1, keepdim=True)).mul_(q)


def _dkd_block(
    rule: Rule, lq: torch.Tensor, lp: torch.Tensor, y: torch.Tensor, want_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DKD on one block: ``a TCKD + b NCKD`` and its gradient in closed form.

    With ``p0``, ``q0`` the probabilities with the target class zeroed, ``P = sum p0`` and
    ``Q = sum q0`` (sums of the other classes, exact even when ``p_y`` rounds to 1):
    ``TCKD = p_y log(p_y/q_y) + P log(P/Q)``, ``NCKD = sum p0 (log p - log q) / P - log(P/Q)``,
    ``dTCKD/du = q - P q0/Q - p_y e_y`` and ``dNCKD/du = q0/Q - p0/P``.
    """
    idx = y[:, None]
    q, p = lq.exp(), lp.exp()
    lq_y, lp_y, p_y = lq.gather(1, idx), lp.gather(1, idx), p.gather(1, idx)
    q0, p0 = q.scatter(1, idx, 0.0), p.scatter_(1, idx, 0.0)
    q_rest, p_rest = q0.sum(-1, keepdim=True), p0.sum(-1, keepdim=True)
    log_ratio = p_rest.log() - q_rest.log()
    lp.clamp_(min=torch.finfo(lp.dtype).min)  # a class the teacher rules out adds 0, not NaN
    nckd = (p0 * (lp - lq)).sum(-1, keepdim=True) / p_rest - log_ratio
    tckd = p_y * (lp_y - lq_y) + p_rest * log_ratio
    values = (rule.a * tckd + rule.b * nckd).squeeze(-1)
    if not want_grad:
        return values, None
    g = q.mul_(rule.a).add_(q0.mul_((rule.b - rule.a * p_rest) / q_rest))
    g.sub_(p0.mul_(rule.b / p_rest))
    return values, g.scatter_add_(1, idx, p_y.mul_(-rule.a))


def _block(
    rule: Rule, s: torch.Tensor, t: torch.Tensor, ws: _Workspace, want_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row values and ``dL/du`` (or None) for one block of scaled logits.

    Every ``(rows, C)`` temporary is one of the workspace's four buffers: ``q`` (and ``p``) from
    the fused softmax kernel, then ``log q`` and ``log p`` over the scaled inputs (which may be
    ``ws.a`` and ``ws.b`` themselves); the gradient is returned in one of them.
    """
    rows = s.shape[0]
    a, b, c, d = ws.a[:rows], ws.b[:rows], ws.c[:rows], ws.d[:rows]
    q = torch._softmax(s, -1, False, out=c)
    p = torch._softmax(t, -1, False, out=d) if rule.kind != "reverse-kl" else None
    lq = torch._log_softmax(s, -1, False, out=a)
    lp = torch._log_softmax(t, -1, False, out=b)
    if rule.kind == "kl":
        assert p is not None
        # a class the teacher rules out (-inf) adds 0 * (finite) instead of 0 * (-inf)
        diff = torch.sub(lp.clamp_(min=torch.finfo(lp.dtype).min), lq, out=lp)
        values = diff.mul_(p).sum(-1)
        return values, q.sub_(p) if want_grad else None
    if rule.kind == "reverse-kl":
        diff = lq.clamp_(min=torch.finfo(lq.dtype).min).sub_(lp)  # likewise for the student
        values = torch.mul(q, diff, out=lp).sum(-1)
        return values, diff.sub_(values[:, None]).mul_(q) if want_grad else None
    assert rule.kind == "mix" and p is not None
    r, sl = _log_ratios(lp, lq, rule.w)  # log(m/q), log(m/p), in a and b
    values = torch.zeros_like(q[:, 0])
    if rule.a:
        values = values - rule.a * torch.mul(p, sl, out=p).sum(-1)
    kl_q_m = -torch.mul(q, r, out=p).sum(-1) if rule.b else None
    if kl_q_m is not None:
        values = values + rule.b * kl_q_m
    if not want_grad:
        return values, None
    if rule.a and rule.b:  # the JSD family (a/b = w/(1-w)): g = -b r + const
        assert kl_q_m is not None
        return values, r.add_(kl_q_m[:, None]).mul_(q).mul_(-rule.b)
    if rule.a:  # skew-kl: g = -(1 - w) p/m
        return values, _project(q, sl.neg_().exp_().mul_(-(1.0 - rule.w) * rule.a), p)
    g = torch.neg(r, out=sl).exp_().mul_(1.0 - rule.w).add_(r).mul_(-rule.b)  # skew-reverse-kl
    return values, _project(q, g, p)


def _check_rows(name: str, x: torch.Tensor, teacher: bool) -> None:
    """Raise for NaN/``+inf`` or an all ``-inf`` row (``-inf`` alone means probability zero)."""
    if not bool((x < float("inf")).all()):
        what = "the teacher must be finite (or -inf)" if teacher else "logits must be finite"
        raise BadInputError(f"{name} contains NaN or +inf; {what} (or -inf for a masked class)")
    if x.shape[-1] > 0 and not bool((x > float("-inf")).any(-1).all()):
        raise BadInputError(f"{name} has a row that is entirely -inf")


def _slow_rows(
    s: torch.Tensor,
    t: torch.Tensor,
    general: General,
    rule: Rule,
    want_grad: bool,
    y: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The general masked formulas (autograd for the gradient) on a few rows."""
    if checks_on():
        _check_rows("teacher_logits", t, teacher=True)
        _check_rows("logits", s, teacher=False)
    with torch.enable_grad():
        u = s.detach().requires_grad_(want_grad)
        lq = torch.log_softmax(u / rule.temperature, -1)
        lp = torch.log_softmax(t / rule.temperature, -1)
        values = general(lp, lq, y) * rule.scale
        if not want_grad:
            return values.detach(), None
        (grad,) = torch.autograd.grad(values.sum(), u)
    # a row whose value is infinite (a class one side rules out) has no gradient: 0, so that
    # masking the row (a zero weight in the backward) leaves no NaN behind
    return values.detach(), grad.masked_fill_(~torch.isfinite(values)[:, None], 0.0)


class _Workspace:
    """Three (or four: ``d``) ``(rows, C)`` block buffers allocated once per call and reused by every block
    (fresh block temporaries cost page faults); ``a`` and ``b`` also hold the scaled inputs."""

    def __init__(
        self, step: int, c: int, dtype: torch.dtype, device: torch.device, count: int = 3
    ) -> None:
        bufs = [torch.empty(step, c, dtype=dtype, device=device) for _ in range(count)]
        self.a, self.b, self.c = bufs[:3]
        self.d = bufs[3] if count > 3 else self.c

    def inputs(
        self, s: torch.Tensor, t: torch.Tensor, inv_t: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``s / T`` and ``t / T`` of one block in the compute dtype: in ``a`` and ``b`` when a
        conversion or a scaling is needed, the inputs themselves otherwise."""
        rows = s.shape[0]
        out = []
        for x, buf in ((s, self.a[:rows]), (t, self.b[:rows])):
            if x.dtype != buf.dtype:
                x = buf.copy_(x)
                if inv_t != 1.0:
                    x.mul_(inv_t)
            elif inv_t != 1.0:
                x = torch.mul(x, inv_t, out=buf)
            out.append(x)
        return out[0], out[1]


def _tvd_diff(
    s: torch.Tensor, t: torch.Tensor, ws: _Workspace
) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` in ``ws.a`` and ``d = q - p`` in ``ws.b`` (the fused softmax kernel, straight into
    the workspace; ``s`` and ``t`` may be ``ws.a`` and ``ws.b``: rows are read before written)."""
    rows = s.shape[0]
    q, d = ws.a[:rows], ws.b[:rows]
    torch._softmax(s, -1, False, out=q)
    torch._softmax(t, -1, False, out=d)
    return q, torch.sub(q, d, out=d)


def _tvd_values(s: torch.Tensor, t: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """``sum |q - p| / 2`` per row of one block of scaled logits."""
    _, d = _tvd_diff(s, t, ws)
    return torch.abs(d, out=ws.c[: s.shape[0]]).sum(-1).mul_(0.5)


def _tvd_grad(
    s: torch.Tensor, t: torch.Tensor, ws: _Workspace, coef: torch.Tensor, out: torch.Tensor
) -> None:
    """``coef * dL/du`` of one block into ``out``: ``q * (g - q.g)`` with ``g = sign(q - p) / 2``
    (``coef``: ``(rows,)`` factors in the compute dtype)."""
    q, d = _tvd_diff(s, t, ws)
    d.sign_()
    dot = torch.mul(q, d, out=ws.c[: s.shape[0]]).sum(-1)
    d.sub_(dot[:, None]).mul_(coef[:, None].mul(0.5))
    if out.dtype == d.dtype:
        torch.mul(d, q, out=out)
    else:  # half precision: the product in the compute dtype, converted once
        out.copy_(d.mul_(q))


#: rule kinds whose backward recomputes its blocks instead of keeping an (N, C) gradient
_RECOMPUTED = frozenset({"tvd"})


class _Pass(NamedTuple):
    """What one pass over the rows gives: values ``(N,)``, the full gradient (or None), and the
    rows done by the general formulas with their gradients (``rows_grad`` None without grad)."""

    values: torch.Tensor | None
    grad: torch.Tensor | None
    rows: torch.Tensor
    rows_grad: torch.Tensor | None


def _rows_pass(
    s: torch.Tensor,
    t: torch.Tensor,
    rule: Rule,
    general: General,
    want_grad: bool,
    y: torch.Tensor | None,
) -> _Pass:
    """The forward over blocks of rows; the full gradient unless ``rule.kind`` is recomputed."""
    n, c = s.shape
    dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
    values = torch.empty(n, dtype=dtype, device=s.device)
    full = want_grad and rule.kind not in _RECOMPUTED
    grad = torch.empty_like(s) if full else None
    no_rows = torch.empty(0, dtype=torch.long, device=s.device)
    if rule.kind == "zero":
        if checks_on() and n:
            _check_rows("teacher_logits", t, teacher=True)
            _check_rows("logits", s, teacher=False)
        values.zero_()
        return _Pass(values, None if grad is None else grad.zero_(), no_rows, None)
    inv_t = 1.0 / rule.temperature
    step = _rows_per_block(n, c)
    count = 3 if rule.kind in ("tvd", "dkd") else 4
    ws = _Workspace(step, c, dtype, s.device, count) if n else None
    for start in range(0, n, step):
        end = min(start + step, n)
        assert ws is not None
        sc, tc = ws.inputs(s[start:end], t[start:end], inv_t)
        if rule.kind == "tvd":
            values[start:end] = _tvd_values(sc, tc, ws)
            continue
        if rule.kind == "dkd":
            assert y is not None
            lq, lp = torch.log_softmax(sc, -1), torch.log_softmax(tc, -1)
            v, g = _dkd_block(rule, lq, lp, y[start:end], want_grad)
        else:
            v, g = _block(rule, sc, tc, ws, want_grad)
        values[start:end] = v
        if grad is not None and g is not None:
            torch.mul(g, rule.scale * inv_t, out=grad[start:end])
    if rule.scale != 1.0:
        values.mul_(rule.scale)
    bad = ~torch.isfinite(values)
    if not (n and bool(bad.any())):
        return _Pass(values, grad, no_rows, None)
    rows = bad.nonzero().squeeze(-1)
    y_rows = None if y is None else y[rows]
    v, g = _slow_rows(s[rows].to(dtype), t[rows].to(dtype), general, rule, want_grad, y_rows)
    values[rows] = v
    if grad is not None and g is not None:
        grad[rows] = g.to(grad.dtype)
    return _Pass(values, grad, rows, g)


def _recomputed_grad(
    s: torch.Tensor, t: torch.Tensor, rule: Rule, grad_values: torch.Tensor, p: _Pass
) -> torch.Tensor:
    """``grad_values[:, None] * dL/ds`` block by block, from the inputs (``tvd``)."""
    n, c = s.shape
    dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
    out = torch.empty_like(s)
    inv_t = 1.0 / rule.temperature
    coef = grad_values.to(dtype) * (rule.scale * inv_t)
    step = _rows_per_block(n, c)
    ws = _Workspace(step, c, dtype, s.device) if n else None
    for start in range(0, n, step):
        end = min(start + step, n)
        assert ws is not None
        sc, tc = ws.inputs(s[start:end], t[start:end], inv_t)
        _tvd_grad(sc, tc, ws, coef[start:end], out[start:end])
    if p.rows.numel() and p.rows_grad is not None:
        gv = grad_values[p.rows].to(p.rows_grad.dtype)[:, None]
        out[p.rows] = (p.rows_grad * gv).to(out.dtype)
    return out


class _FusedRows(torch.autograd.Function):
    """``(logits, teacher) -> (N,)`` per-row divergences; keeps only ``dL_i/ds_i`` (or, for
    the kinds in ``_RECOMPUTED``, nothing of size ``(N, C)``: the backward redoes the blocks)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        s: torch.Tensor,
        t: torch.Tensor,
        rule: Rule,
        general: General,
        want_grad: bool,
        y: torch.Tensor | None,
    ) -> torch.Tensor:
        p = _rows_pass(s, t, rule, general, want_grad, y)
        ctx.rule = rule
        ctx.want_grad = want_grad
        ctx.recompute = None
        if want_grad and p.grad is None and rule.kind in _RECOMPUTED:
            ctx.recompute = p._replace(values=None)  # the fallback rows and their gradients
            ctx.save_for_backward(s, t)
        else:
            ctx.save_for_backward(p.grad)
        assert p.values is not None
        return p.values

    @staticmethod
    def backward(ctx: Any, grad_values: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if not ctx.want_grad:
            raise RuntimeError("the distillation loss ran without gradients (no_grad forward)")
        if ctx.recompute is not None:
            s, t = ctx.saved_tensors
            grad = _recomputed_grad(s, t, ctx.rule, grad_values, ctx.recompute)
            return grad, None, None, None, None, None
        (grad,) = ctx.saved_tensors
        return grad * grad_values[:, None].to(grad.dtype), None, None, None, None, None


def divergence_rows(
    s: torch.Tensor,
    t: torch.Tensor,
    rule: Rule,
    general: General,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row values of ``rule`` for student logits ``s`` and detached teacher logits ``t``.

    ``general(lp, lq, y)`` is the same divergence on log-probabilities (the masked formulas),
    used for the rows the fused expression cannot do; ``y`` are ``(N,)`` class ids (``dkd``).
    """
    want_grad = torch.is_grad_enabled() and s.requires_grad
    return _FusedRows.apply(s, t.detach(), rule, general, want_grad, y)


def mixture_rule(w: float, a: float, b: float, temperature: float, scale: float = 1.0) -> Rule:
    """The rule of ``a KL(p || m) + b KL(q || m)``, ``m = w p + (1 - w) q`` (ends reduced)."""
    if w <= 0.0:  # m = q: only a KL(p || q) is left
        return Rule("kl", temperature, scale * a) if a else Rule("zero", temperature)
    if w >= 1.0:  # m = p: only b KL(q || p)
        return Rule("reverse-kl", temperature, scale * b) if b else Rule("zero", temperature)
    assert math.isfinite(a) and math.isfinite(b)
    return Rule("mix", temperature, scale, w, a, b)


def jsd_rule(beta: float, normalize: bool, temperature: float) -> Rule:
    """The rule of the generalized JSD ``JSD_beta`` (``normalize``: over ``beta (1 - beta)``)."""
    if normalize:  # KL(p || m) / (1 - beta) + KL(q || m) / beta
        a, b = (1.0 / (1.0 - beta) if beta < 1 else 0.0), (1.0 / beta if beta > 0 else 0.0)
    else:
        a, b = beta, 1.0 - beta
    return mixture_rule(beta, a, b, temperature)


def block_rows(
    rule: Rule, s: torch.Tensor, t: torch.Tensor, factor: torch.Tensor | None
) -> torch.Tensor:
    """Values ``(N,)`` of ``rule`` on scaled logits ``s``, ``t`` (``rule.temperature`` unused),
    in cache-sized blocks; with ``factor`` ``(N,)``, ``factor * dL/ds`` is written over ``s``.

    Rows the fused expression cannot do come out non-finite (the caller redoes them); ``t`` is
    read, never written. For callers that form the logits themselves (``linear-jsd``).
    """
    n, c = s.shape
    values = torch.empty(n, dtype=s.dtype, device=s.device)
    step = _rows_per_block(n, c)
    ws = _Workspace(step, c, s.dtype, s.device, 4) if n else None
    for start in range(0, n, step):
        end = min(start + step, n)
        assert ws is not None
        v, g = _block(rule, s[start:end], t[start:end], ws, factor is not None)
        values[start:end] = v
        if g is not None:  # the block of s was read into the workspace before g was formed
            assert factor is not None
            torch.mul(g, factor[start:end, None] * rule.scale, out=s[start:end])
    return values.mul_(rule.scale) if rule.scale != 1.0 else values
