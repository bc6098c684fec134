"""attention-entropy-reg: the entropy-guided attention regulariser (per-head entropy targets)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

_WHO = "attention-entropy-reg"


def _stack(attentions: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, bool]:
    """(L, B, H, Tq, Tk) from a stacked tensor or a list of (B, H, Tq, Tk); and whether it was 4-D."""
    if isinstance(attentions, (list, tuple)):
        if not attentions or not all(isinstance(a, torch.Tensor) for a in attentions):
            raise BadInputError(
                f"{_WHO}: attentions must be a tensor or a non-empty list of tensors"
            )
        if len({tuple(a.shape) for a in attentions}) != 1:
            raise BadInputError(f"{_WHO}: every layer's attention map must have the same shape")
        attentions = torch.stack(list(attentions))
    if not isinstance(attentions, torch.Tensor) or not attentions.is_floating_point():
        raise BadInputError(
            f"{_WHO}: attentions must be floating-point probabilities (B, H, Tq, Tk) or "
            "(L, B, H, Tq, Tk)"
        )
    if attentions.dim() not in (4, 5):
        raise BadInputError(
            f"{_WHO}: attentions must be (B, H, Tq, Tk) or (L, B, H, Tq, Tk); got {tuple(attentions.shape)}"
        )
    single = attentions.dim() == 4
    return (attentions[None] if single else attentions), single


def _allowed(
    mask: torch.Tensor | None, causal: bool, shape: torch.Size, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Key mask broadcast to (L, B, H, Tq, Tk) and query-row mask (L, B, H, Tq), or None."""
    tq, tk = shape[-2], shape[-1]
    keys = rows = None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise BadInputError(f"{_WHO}: attention_mask must be a tensor")
        m = mask.to(device)
        if m.dtype != torch.bool:
            if input_checks_enabled() and not bool(((m == 0) | (m == 1)).all()):
                raise BadInputError(f"{_WHO}: attention_mask must hold 0/1 or booleans")
            m = m != 0
        if m.dim() == 2 and tuple(m.shape) == (shape[1], tk):  # (B, Tk) padding mask
            if tq == tk:
                rows = m[None, :, None, :].expand(shape[:-1])
            m = m[:, None, None, :]
        try:
            keys = torch.broadcast_to(m, shape)
        except RuntimeError:
            raise BadInputError(
                f"{_WHO}: attention_mask of shape {tuple(mask.shape)} fits neither (B, Tk) nor "
                f"the attention shape {tuple(shape)}"
            ) from None
    if causal:
        i = torch.arange(tq, device=device)[:, None]
        c = torch.arange(tk, device=device)[None] <= i + (tk - tq)
        keys = c.expand(shape) if keys is None else keys & c
    return keys, rows


class _RowEntropy(torch.autograd.Function):
    """``-sum_j a_j log a_j`` over the last axis with 0 log 0 = 0 and gradient 0 where a = 0.

    Saves only ``a``: the gradient ``-(log a + 1)`` is rebuilt in place in the backward pass.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(a)
        return -torch.special.xlogy(a, a).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def, override]
        (a,) = ctx.saved_tensors
        g = torch.log(a).add_(1).masked_fill_(a == 0, 0.0)
        return g.mul_(-grad[..., None])


class AttentionEntropyRegLoss(Loss):
    """attention-entropy-reg: keep each head's attention entropy near a per-head target.

    For layer l, head h and query row t of attention probabilities A (rows sum to 1),
    ``H = -sum_j A_tj log A_tj`` (exact 0 log 0 = 0, or the official ``log(A + eps)``) and

        dev = H - theta_h Hmax,   P = [|dev| > tolerance * Hmax] dev^2,
        loss = coefficient * (1/L) sum_l (1/H) sum_h sum_{b,t} P      (reduction "sum")

    with ``Hmax = log(context_size)`` (default: Tk). ``reduction="sum"`` is the paper's scale
    (it grows with B * T: the default coefficient 1e-5 is tuned for it); ``"mean"`` averages P
    over the counted rows instead, ``"none"`` returns ``coefficient * P`` per row (B, H, Tq) or
    (L, B, H, Tq). ``causal=True`` uses each row's own maximum ``log(#keys it may attend)``
    (t + 1 for self-attention) instead of the full context. ``attention_mask`` (B, Tk) of 1/0
    (Hugging Face's) drops padded keys from the causal maximum and padded query rows from the
    sum. The indicator has no gradient, so ``thresholds`` learn only outside the tolerance band.
    Gradients at probability 0 (masked keys) are 0, never NaN. Needs the attention
    probabilities (``output_attentions=True``, which turns off fused SDPA kernels); add it to the
    cross-entropy with a stack.

    Inputs: ``attentions`` (B, H, Tq, Tk), (L, B, H, Tq, Tk) or a list of (B, H, Tq, Tk);
    optional ``thresholds`` (H,) or (L, H) (learnable theta_h; default ``threshold`` for every
    head) and ``attention_mask``.

    Args:
        coefficient: lambda, the weight of the penalty (1e-5 in the official code).
        tolerance: gamma, the half-width of the band around the target, in units of Hmax (0.2).
        threshold: theta of every head when no ``thresholds`` input is given.
        context_size: Hmax = log(context_size) (default None: the number of keys Tk).
        causal: per-row Hmax = log(number of keys the row may attend).
        eps: add eps inside the log as the official code does (1e-9 there); 0 is exact.
        reduction: ``"sum"`` (the paper's), ``"mean"`` (over counted rows) or ``"none"``.

    Citation: Jha and Reagen, "Entropy-Guided Attention for Private LLMs" (arXiv:2501.03489).
    """

    citation = ("Entropy-Guided Attention for Private LLMs", "arXiv:2501.03489")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        coefficient: float = 1e-5,
        tolerance: float = 0.2,
        threshold: float = 0.5,
        context_size: int | None = None,
        causal: bool = False,
        eps: float = 0.0,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        self.coefficient = validate.nonnegative("coefficient", coefficient)
        self.tolerance = validate.nonnegative("tolerance", tolerance)
        self.threshold = validate.number("threshold", threshold)
        self.context_size = validate.optional(validate.integer, "context_size", context_size, low=1)
        self.causal = validate.flag("causal", causal)
        self.eps = validate.nonnegative("eps", eps)
        self.reduction = validate.reduction(reduction)

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Attention probabilities (3, 2, 5, 5) of random scores, for the sweeps."""
        return {"attentions": torch.softmax(torch.randn(3, 2, 5, 5, generator=generator) * 2, -1)}

    def forward(
        self,
        attentions: torch.Tensor | Sequence[torch.Tensor],
        thresholds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        a, single = _stack(attentions)
        dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
        a = a.to(dtype)
        n_layers, _, n_heads = a.shape[:3]
        if input_checks_enabled() and a.numel():
            lo, hi = torch.aminmax(a.detach())
            if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
                raise BadInputError(f"{_WHO}: attentions contain NaN or inf")
            if bool(lo < 0) or bool(hi > 1.01):
                raise BadInputError(f"{_WHO}: attentions must be probabilities in [0, 1]")
        theta = self._thresholds(thresholds, n_layers, n_heads, a)
        keys, rows = _allowed(attention_mask, self.causal, a.shape, a.device)
        if keys is not None:
            a = a.masked_fill(~keys, 0.0)
        if self.eps > 0:
            h = -(a * torch.log(a + self.eps)).sum(dim=-1)
        else:
            h = _RowEntropy.apply(a)  # 0 log 0 = 0 with a zero gradient there
        if self.causal:
            n_keys = keys.sum(dim=-1) if keys is not None else torch.full_like(h, a.shape[-1])
            hmax = n_keys.to(dtype).clamp_min(1).log()
        else:
            hmax = torch.full_like(h, math.log(self.context_size or a.shape[-1]))
        dev = h - theta * hmax
        outside = (dev.abs() > self.tolerance * hmax).detach()
        counted = torch.ones_like(outside) if rows is None else rows
        if keys is not None:
            counted = counted & keys.any(dim=-1)
        penalty = torch.where(outside & counted, dev.square(), torch.zeros_like(dev))
        if self.reduction == "none":
            out = self.coefficient * penalty
            return out[0] if single else out
        total = penalty.sum()
        if self.reduction == "sum":
            return self.coefficient * total / (n_layers * n_heads)
        return self.coefficient * total / counted.sum().clamp_min(1).to(dtype)

    def _thresholds(
        self, thresholds: torch.Tensor | None, n_layers: int, n_heads: int, a: torch.Tensor
    ) -> torch.Tensor | float:
        if thresholds is None:
            return self.threshold
        if not isinstance(thresholds, torch.Tensor) or not thresholds.is_floating_point():
            raise BadInputError(f"{_WHO}: thresholds must be a floating tensor (H,) or (L, H)")
        if tuple(thresholds.shape) not in ((n_heads,), (n_layers, n_heads)):
            raise BadInputError(
                f"{_WHO}: thresholds must have shape ({n_heads},) or ({n_layers}, {n_heads}); "
                f"got {tuple(thresholds.shape)}"
            )
        if input_checks_enabled() and not bool(torch.isfinite(thresholds.detach()).all()):
            raise BadInputError(f"{_WHO}: thresholds contain NaN or inf")
        t = thresholds.to(a.device, a.dtype)
        t = t[None] if t.dim() == 1 else t
        return t[:, None, :, None]  # (L, 1, H, 1) against (L, B, H, Tq)

    def extra_repr(self) -> str:
        return (
            f"coefficient={self.coefficient}, tolerance={self.tolerance}, causal={self.causal}, "
            f"reduction={self.reduction!r}"
        )
