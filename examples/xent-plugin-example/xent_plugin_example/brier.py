"""The Brier score as a loss."""

from __future__ import annotations

import torch

from xent_core import BadInputError
from xent_core.base_loss import Loss


class BrierLoss(Loss):
    """Brier score: squared error between the softmax and the one-hot target.

    ``loss_i = sum_c (softmax(logits_i)_c - 1[c = y_i])^2``.

    Args:
        reduction: ``"mean"`` (over items), ``"sum"`` or ``"none"``.

    Citation: Brier, "Verification of forecasts expressed in terms of probability",
    Monthly Weather Review 78(1), 1950.
    """

    citation = (
        "Verification of forecasts expressed in terms of probability",
        "doi:10.1175/1520-0493(1950)078<0001:VOFEIT>2.0.CO;2",
    )

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise BadInputError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape[:-1] != targets.shape:
            raise BadInputError(
                f"targets shape {tuple(targets.shape)} must equal logits shape without the class dim "
                f"{tuple(logits.shape[:-1])}"
            )
        probs = torch.softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=-1)
        onehot = torch.nn.functional.one_hot(targets, logits.shape[-1]).to(probs.dtype)
        per_item = ((probs - onehot) ** 2).sum(-1)
        if self.reduction == "mean":
            return per_item.mean()
        if self.reduction == "sum":
            return per_item.sum()
        return per_item
