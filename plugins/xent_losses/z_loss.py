"""The z-loss alone: a penalty on the squared log-partition function, for loss stacks."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import check_index, check_number, check_reduction, prepare, reduce

_WHO = "z-loss"


def z_loss(
    logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    coefficient: float = 1e-4,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`ZLoss`."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index)
    lse = torch.logsumexp(b.logits, dim=-1)
    return coefficient * reduce(lse.square(), b, reduction)


class ZLoss(Loss):
    """z-loss: coefficient * logsumexp(logits)^2, keeping the softmax normaliser near 1.

    ``l = coefficient * (log sum_k exp(logits_k))^2`` per item. ``targets`` is optional: when
    given (class ids or probabilities), items whose id equals ``ignore_index`` do not count, so
    the term averages over the same tokens as the cross-entropy it accompanies
    (``xent_core.stack("cross-entropy + z-loss")``).

    Inputs: ``logits`` (..., C), optional ``targets``.

    Args:
        coefficient: weight of ``logsumexp^2`` (>= 0; 1e-4 as in PaLM).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways"
    (arXiv:2204.02311), section 5 ("z_loss = 1e-4 * log^2 Z").
    """

    citation = ("PaLM: Scaling Language Modeling with Pathways", "arXiv:2204.02311")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self, coefficient: float = 1e-4, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.coefficient = check_number("coefficient", coefficient, low=0.0)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return z_loss(
            logits,
            targets,
            coefficient=self.coefficient,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}, reduction={self.reduction!r}"
