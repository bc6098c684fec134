"""Focal loss: cross-entropy down-weighted on well-classified items."""

from __future__ import annotations

import torch

from xent_core import BadParameterError
from xent_core.base_loss import Loss

from ._common import (
    check_class_vector,
    check_index,
    check_number,
    check_reduction,
    class_weights,
    prepare,
    reduce,
    target_nll,
)

_WHO = "focal"


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`FocalLoss`; ``alpha`` is a number or a per-class tensor."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, soft_ok=False)
    log_pt = -target_nll(b)
    per_item = -log_pt
    if gamma != 0.0:
        # 1 - p_t from log p_t without cancellation; the floor keeps (1 - p_t)^gamma
        # differentiable for gamma < 1 when p_t rounds to 1.
        one_minus = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
        per_item = one_minus.pow(gamma) * per_item
    if alpha is not None:
        if isinstance(alpha, (int, float)):
            per_item = float(alpha) * per_item
        else:
            a = check_class_vector(alpha, b, "alpha", _WHO)
            assert a is not None and b.ids is not None
            per_item = a[b.ids] * per_item
    return reduce(per_item, b, reduction)


class FocalLoss(Loss):
    """Focal loss -alpha_t (1 - p_t)^gamma log p_t: focuses training on hard, misclassified items.

    ``l = -alpha_t * (1 - p_t)^gamma * log p_t`` with ``p_t = softmax(logits)_y``. ``alpha`` is
    ``None`` (1), one number (a global factor) or a list of per-class weights (``alpha_t =
    alpha[y]``). ``mean`` averages over non-ignored items (not over the alpha weights).
    gamma = 0 and alpha = None give exactly cross-entropy. ``1 - p_t`` is computed as
    ``-expm1(log p_t)``.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...).

    Args:
        gamma: focusing exponent (>= 0; 2.0 is the paper's choice).
        alpha: None, one global factor, or a list of per-class weights ``alpha[y]``.
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection"
    (arXiv:1708.02002).
    """

    citation = ("Focal Loss for Dense Object Detection", "arXiv:1708.02002")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.gamma = check_number("gamma", gamma, low=0.0)
        self.alpha_scalar: float | None = None
        per_class = None
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            self.alpha_scalar = check_number("alpha", alpha, low=0.0)
        elif alpha is not None:
            if isinstance(alpha, (bool, str)):
                raise BadParameterError(f"alpha must be a number or a list, got {alpha!r}")
            per_class = class_weights("alpha", alpha)
        self.register_buffer("alpha", per_class, persistent=False)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha if self.alpha is not None else self.alpha_scalar
        return focal_loss(
            logits,
            targets,
            gamma=self.gamma,
            alpha=alpha,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"
