"""A chunked self-adjusting Dice loss for class-id targets (custom autograd Function).

Per row, with ``p = softmax(z)``, ``t_k = (1 - p_k)^alpha p_k``, the one-hot target ``y`` and
``D_k = t_k^2 + y_k^2 + gamma`` (or ``t_k + y_k + gamma`` unsquared)::

    l = sum_k [1 - (2 t_k y_k + gamma) / D_k]

Every class but the target is a ``y_k = 0`` term, ``1 - gamma / D_k``, so a block is handled as
if ``y = 0`` everywhere and two columns per row are then set right from (rows,)-sized values:
the target and the row's most likely class m. Only p_m can exceed 1/2, so only there does
``1 - p`` lose digits: ``1 - p_m`` is taken as the sum of the other probabilities (p_m zeroed
for one reduction pass), exact where ``1 - p_m`` itself would round to 0.

Gradient (closed form): with ``f(t)`` the per-class term, ``w_k = f'(t_k) t_k (1 - alpha p_k /
(1 - p_k))`` is ``dl/dt_k * dt_k/dz_k`` over the softmax, and ``dl/dz_j = w_j - p_j sum_k w_k``.
For class m, ``w_m`` grows like ``(1 - p_m)^(alpha - 1)``; its own entry is written as
``w_m (1 - p_m) - p_m sum_{k != m} w_k`` (bounded). Rows where ``1 - p_m`` falls below
``2^-80`` (float32; ``2^-900`` in float64), where that factor or the other probabilities would
leave the floating range, go through the general log-space formula and autograd instead.

The Function saves only the inputs and the indices of those rows; both passes run block by
block (``_BLOCK_ELEMENTS``) through PyTorch's fused softmax kernel with float32 buffers reused
across blocks (``_fused_ce._Workspace``), so no (N, C) float32 buffer is held. Half-precision
inputs are copied to float32 one block at a time and the gradient is converted once per block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ._fused_ce import _Workspace

_BLOCK_ELEMENTS = 1 << 18
"""Elements per block: larger blocks spend less on the per-row (rows, 1) steps."""

GeneralRows = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(z, y_one_hot) -> (rows,)`` per-item losses by the general (differentiable) formula."""


def _tiny(dtype: torch.dtype) -> float:
    return 2.0**-900 if dtype == torch.float64 else 2.0**-80


def _term(t: torch.Tensor, y: torch.Tensor, smooth: float, square: bool) -> torch.Tensor:
    """``1 - (2 t y + gamma) / D`` per row (rows, 1)."""
    den = t * t + y * y + smooth if square else t + y + smooth
    return 1.0 - (2.0 * t * y + smooth) / den


def _dterm(t: torch.Tensor, y: torch.Tensor, smooth: float, square: bool) -> torch.Tensor:
    """``d/dt [1 - (2 t y + gamma) / D]`` per row (rows, 1)."""
    num = 2.0 * t * y + smooth
    if square:
        den = t * t + y * y + smooth
        return (2.0 * t * num - 2.0 * y * den) / (den * den)
    den = t + y + smooth
    return (num - 2.0 * y * den) / (den * den)


def _argmax_rows(p: torch.Tensor, groups: int = 32) -> torch.Tensor:
    """(rows, 1) index of a largest entry per row (any one of tied maxima).

    PyTorch's CPU ``max``/``argmax`` along the last dimension tracks indices one element at a
    time (about 15x ``amax``); here the columns are cut into ``groups`` strided groups, an
    ``amax`` across the groups (vectorized along the contiguous columns) narrows each row to one
    column of ``C / groups`` candidates, and only the short rows that are left go through
    ``argmax``. The last ``C mod groups`` columns are compared separately.
    """
    rows, c = p.shape
    width = c // groups
    if width < 64 or p.device.type != "cpu":
        return p.argmax(-1, keepdim=True)
    main = width * groups
    view = p[:, :main].unflatten(1, (groups, width))
    col = view.amax(1).argmax(-1, keepdim=True)  # (rows, 1): the column within a group
    cand = view.gather(2, col[:, None, :].expand(rows, groups, 1)).squeeze(2)
    best, grp = cand.max(-1, keepdim=True)
    m = grp * width + col
    if main < c:
        tail_best, tail = p[:, main:].max(-1, keepdim=True)
        m = torch.where(tail_best > best, tail + main, m)
    return m


class _Block:
    """One block's softmax, scores and the exact per-row values at classes m and y."""

    def __init__(self, x: torch.Tensor, ids: torch.Tensor, alpha: float, ws: _Workspace) -> None:
        rows = x.shape[0]
        z = x if x.dtype == ws.dtype else ws.get("z", rows).copy_(x)
        p = torch.ops.aten._softmax.out(z, -1, False, out=ws.get("p", rows))
        m = _argmax_rows(p)
        pm = p.gather(1, m)
        rest = p.scatter_(1, m, 0.0).sum(-1, keepdim=True)  # 1 - p_m without cancellation
        p.scatter_(1, m, pm)
        one = torch.ones((), dtype=p.dtype, device=p.device)
        u = torch.sub(one, p, out=ws.get("u", rows))  # 1 - p: accurate but at m
        t = torch.pow(u, alpha, out=ws.get("t", rows)).mul_(p)
        py = p.gather(1, ids)
        same = ids == m
        safe = rest.clamp_min(_tiny(p.dtype))
        self.p, self.u, self.t, self.m, self.pm, self.rest, self.same = p, u, t, m, pm, safe, same
        self.bad = rest < _tiny(p.dtype)
        self.tm = safe.pow(alpha) * pm
        self.uy = torch.where(same, safe, 1.0 - py)
        self.ty = torch.where(same, self.tm, torch.exp(alpha * torch.log1p(-py)) * py)
        self.py = py


def _forward_block(
    b: _Block, ids: torch.Tensor, yv: torch.Tensor, smooth: float, square: bool, ws: _Workspace
) -> torch.Tensor:
    """(rows, 1) losses: the y = 0 terms ``t^2 / (t^2 + gamma)`` (``t / (t + gamma)``) summed
    without columns m and y, plus those two columns' exact terms."""
    t, rows = b.t, b.t.shape[0]
    d = ws.get("d", rows)
    if square:
        torch.addcmul(torch.full((), smooth, dtype=t.dtype, device=t.device), t, t, out=d)
    else:
        torch.add(t, smooth, out=d)
    torch.div(t, d, out=d).scatter_(1, ids, 0.0).scatter_(1, b.m, 0.0)
    if square:  # sum_k t_k * (t_k / D_k), a row-wise dot product (bmm is several times slower)
        total = torch.linalg.vecdot(t, d)[:, None]
    else:
        total = d.sum(-1, keepdim=True)
    zero = torch.zeros_like(yv)
    total = total + _term(b.tm, torch.where(b.same, yv, zero), smooth, square)
    return total + torch.where(b.same, zero, _term(b.ty, yv, smooth, square))


def _backward_block(
    b: _Block,
    ids: torch.Tensor,
    yv: torch.Tensor,
    g: torch.Tensor,
    alpha: float,
    smooth: float,
    square: bool,
    ws: _Workspace,
    out: torch.Tensor,
) -> torch.Tensor:
    p, t, rows = b.p, b.t, b.t.shape[0]
    d = ws.get("d", rows)
    u = b.u
    if square:  # y = 0: f' t = 2 gamma t^2 / D^2
        torch.addcmul(torch.full((), smooth, dtype=t.dtype, device=t.device), t, t, out=d)
        t.div_(d)
        t.mul_(t)
        scale = 2.0 * smooth
    else:  # y = 0: f' t = gamma t / D^2
        torch.add(t, smooth, out=d)
        t.div_(d).div_(d)
        scale = smooth
    torch.addcmul(t, t, u.reciprocal_().mul_(p), value=-alpha, out=d)  # (1 - a p / (1 - p))
    d.mul_(g * scale)
    zero = torch.zeros_like(yv)
    # exact w at y (when y != m) and at m, times the upstream gradient
    fy = _dterm(b.ty, yv, smooth, square) * b.ty * (1.0 - alpha * b.py / b.uy) * g
    ym = torch.where(b.same, yv, zero)
    fm = _dterm(b.tm, ym, smooth, square) * g
    wm = fm * b.pm * b.rest.pow(alpha - 1.0) * (b.rest - alpha * b.pm)  # w_m (exact)
    wm_u = fm * b.tm * (b.rest - alpha * b.pm)  # w_m (1 - p_m), bounded
    d.scatter_(1, ids, fy).scatter_(1, b.m, 0.0)
    rest_w = d.sum(-1, keepdim=True)
    torch.addcmul(d, p, (rest_w + wm).neg_(), out=out)
    return out.scatter_(1, b.m, wm_u - b.pm * rest_w)


class FusedDice(torch.autograd.Function):
    """Per-row Dice losses (rows,) for class ids; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        ids: torch.Tensor,
        valid: torch.Tensor,
        alpha: float,
        smooth: float,
        square: bool,
        general: GeneralRows,
    ) -> torch.Tensor:
        n = x.shape[0]
        ws = _workspace(x)
        yv = valid.to(ws.dtype)[:, None]
        ids = ids[:, None]
        loss = torch.empty(n, 1, dtype=ws.dtype, device=x.device)
        bad: list[torch.Tensor] = []
        for r0 in range(0, n, ws.rows):
            r1 = min(n, r0 + ws.rows)
            b = _Block(x[r0:r1], ids[r0:r1], alpha, ws)
            loss[r0:r1] = _forward_block(b, ids[r0:r1], yv[r0:r1], smooth, square, ws)
            if bool(b.bad.any()):
                bad.append(b.bad.squeeze(1).nonzero().squeeze(1) + r0)
        rows = torch.cat(bad) if bad else torch.empty(0, dtype=torch.long, device=x.device)
        if rows.numel():
            with torch.no_grad():
                loss[rows] = general(x[rows].to(ws.dtype), _one_hot(ids, yv, rows, x)).unsqueeze(1)
        ctx.save_for_backward(x, ids, yv, rows)
        ctx.alpha, ctx.smooth, ctx.square, ctx.general = alpha, smooth, square, general
        return loss.squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, ids, yv, rows = ctx.saved_tensors
        nones = (None,) * 6
        if not ctx.needs_input_grad[0]:
            return (None, *nones)
        alpha, smooth, square = ctx.alpha, ctx.smooth, ctx.square
        n = x.shape[0]
        ws = _workspace(x)
        g = g.to(ws.dtype)[:, None]
        grad = torch.empty_like(x)
        direct = x.dtype == ws.dtype
        for r0 in range(0, n, ws.rows):
            r1 = min(n, r0 + ws.rows)
            b = _Block(x[r0:r1], ids[r0:r1], alpha, ws)
            out = grad[r0:r1] if direct else ws.get("z", r1 - r0)
            _backward_block(b, ids[r0:r1], yv[r0:r1], g[r0:r1], alpha, smooth, square, ws, out)
            if not direct:
                grad[r0:r1].copy_(out)
        if rows.numel():
            with torch.enable_grad():
                z = x[rows].detach().to(ws.dtype).requires_grad_()
                value = ctx.general(z, _one_hot(ids, yv, rows, x))
                (gz,) = torch.autograd.grad(value, z, g[rows].squeeze(1))
            grad[rows] = gz.to(grad.dtype)
        return (grad, *nones)


def _workspace(x: torch.Tensor) -> _Workspace:
    ws = _Workspace(x)
    ws.rows = max(1, min(x.shape[0], _BLOCK_ELEMENTS // max(1, x.shape[1])))
    return ws


def _one_hot(
    ids: torch.Tensor, yv: torch.Tensor, rows: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """The one-hot targets of ``rows`` (zero rows where ignored) in the compute dtype."""
    y = torch.zeros(rows.numel(), x.shape[1], dtype=yv.dtype, device=x.device)
    return y.scatter_(1, ids[rows], yv[rows])
