"""Generalized cross-entropy (GCE): the comp-sum loss with tau = 1 + q."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import check_index, check_number, check_reduction
from .comp_sum import comp_sum_loss


def generalized_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    q: float = 0.7,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`GeneralizedCrossEntropyLoss`."""
    return comp_sum_loss(
        logits,
        targets,
        tau=1.0 + q,
        ignore_index=ignore_index,
        reduction=reduction,
        who="generalized-ce",
    )


class GeneralizedCrossEntropyLoss(Loss):
    """Generalized cross-entropy (1 - p_y^q) / q, robust to label noise; comp-sum with tau = 1 + q.

    ``l = (1 - p_y^q) / q``: q -> 0 recovers cross-entropy, q = 1 gives ``1 - p_y`` (MAE). It is
    the member tau = 1 + q of the comp-sum family and is computed the same stable way.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...).

    Args:
        q: exponent (>= 0; 0.7 as recommended by Zhang & Sabuncu; q -> 0 is cross-entropy).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citations: Zhang, Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks
    with Noisy Labels" (arXiv:1805.07836); Mao, Mohri, Zhong, "Cross-Entropy Loss Functions:
    Theoretical Analysis and Applications" (arXiv:2304.07288).
    """

    citation = (
        (
            "Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy Labels",
            "arXiv:1805.07836",
        ),
        ("Cross-Entropy Loss Functions: Theoretical Analysis and Applications", "arXiv:2304.07288"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(self, q: float = 0.7, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.q = check_number("q", q, low=0.0)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return generalized_cross_entropy(
            logits, targets, q=self.q, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"q={self.q}, reduction={self.reduction!r}"
