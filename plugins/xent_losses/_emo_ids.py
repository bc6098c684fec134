"""``emo`` with class-id targets as one autograd Function (closed-form gradient)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class EmoIds(torch.autograd.Function):
    """Per-row ``emo`` values for class ids ``y`` and unit-norm cost embedding rows ``E``.

    With ``q = softmax(x)``, ``u = q @ E``, ``e = E[y]`` (zero on ignored rows) and ``v`` the
    row's validity: ``demd = v - e . u``, ``ce = v (lse - x_y)`` and, for the dynamic mix,
    ``l = 0.5 (ce + r demd)`` with ``r = min(ce / (max(demd, 0) + 1e-10), max_ratio)`` held
    constant (``mix='none'``: ``l = demd``). The forward runs the same kernels as the autograd
    formula; the backward writes ``dl/dx = q (a + c (e . u - s)) - a [k = y]`` with
    ``s = e @ E^T``, ``a = 0.5 v g`` and ``c = 0.5 r g`` (``g`` for ``mix='none'``) in one
    ``(N, C)`` buffer, instead of the separate softmax, log-softmax and gather backwards.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        ids: torch.Tensor,
        valid: torch.Tensor,
        unit: torch.Tensor,
        dynamic: bool,
        max_ratio: float | None,
    ) -> torch.Tensor:
        q = torch.softmax(x, dim=-1)
        picked = unit[ids] * valid[:, None]  # P @ E for one-hot P (zero rows if ignored)
        dot = (picked * (q @ unit)).sum(-1)
        distance = valid - dot
        ratio = None
        if dynamic:
            ce = F.cross_entropy(x, ids, reduction="none") * valid
            # rounding can leave the bound a hair below 0: no division by 0, no sign flip
            ratio = ce / (distance.clamp_min(0.0) + 1e-10)
            if max_ratio is not None:
                ratio = ratio.clamp(max=max_ratio)
            distance = 0.5 * (ce + ratio * distance)
        ctx.save_for_backward(q, ids, valid, unit, picked, dot, ratio)
        return distance

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, ids, valid, unit, picked, dot, ratio = ctx.saved_tensors
        c = g if ratio is None else 0.5 * g * ratio
        a = None if ratio is None else 0.5 * g * valid
        grad = torch.mm(picked, unit.T).mul_(-c[:, None])  # -c s
        shift = c * dot if a is None else c * dot + a
        grad.add_(shift[:, None]).mul_(q)
        if a is not None:
            grad.scatter_add_(1, ids[:, None], -a[:, None])
        return grad, None, None, None, None, None
