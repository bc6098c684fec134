"""The Brier score as a loss."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss


class BrierLoss(Loss):
    """Brier score: squared error between the softmax and the one-hot target.

    ``loss_i = sum_c (softmax(logits_i)_c - 1[c = y_i])^2``, reduced by ``mean`` (over the items
    whose target is not ``ignore_index``), ``sum`` or ``none`` (0 for ignored items).

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        ignore_index: target id of items that do not count.

    Citation: Brier, "Verification of forecasts expressed in terms of probability",
    Monthly Weather Review 78(1), 1950.
    """

    citation = (
        "Verification of forecasts expressed in terms of probability",
        "doi:10.1175/1520-0493(1950)078<0001:VOFEIT>2.0.CO;2",
    )

    def __init__(self, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        self.reduction = validate.reduction(reduction)
        self.ignore_index = validate.integer("ignore_index", ignore_index)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not logits.is_floating_point():
            raise BadInputError(f"logits must be floating point, got {logits.dtype}")
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise BadInputError(f"targets must be integer class ids, got {targets.dtype}")
        if logits.shape[:-1] != targets.shape:
            raise BadInputError(
                f"targets shape {tuple(targets.shape)} must equal logits shape without the class dim "
                f"{tuple(logits.shape[:-1])}"
            )
        keep = targets != self.ignore_index
        if input_checks_enabled():  # data-dependent checks (a device sync on a GPU)
            if not torch.isfinite(logits).all():
                raise BadInputError("logits contain NaN or inf")
            bad = keep & ((targets < 0) | (targets >= logits.shape[-1]))
            if bad.any():
                raise BadInputError(
                    f"targets must lie in [0, {logits.shape[-1]}) or equal ignore_index "
                    f"{self.ignore_index}; found {targets[bad][0].item()}"
                )
        probs = torch.softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=-1)
        safe = torch.where(keep, targets, 0).long()
        onehot = torch.nn.functional.one_hot(safe, logits.shape[-1]).to(probs.dtype)
        per_item = torch.where(keep, ((probs - onehot) ** 2).sum(-1), 0.0)
        if self.reduction == "mean":
            return per_item.sum() / keep.sum().clamp(min=1)
        if self.reduction == "sum":
            return per_item.sum()
        return per_item
