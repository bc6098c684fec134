"""Mean absolute error on the softmax, 1 - p_y: the comp-sum loss with tau = 2."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import check_index, check_reduction
from .comp_sum import comp_sum_loss


def mean_absolute_error(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`MAELoss`."""
    return comp_sum_loss(
        logits, targets, tau=2.0, ignore_index=ignore_index, reduction=reduction, who="mae"
    )


class MAELoss(Loss):
    """Mean absolute error 1 - p_y, a symmetric (noise-tolerant) loss; comp-sum with tau = 2.

    ``l = 1 - p_y``. Convention: this is the comp-sum member tau = 2 of Mao et al.; Ghosh et al.
    write MAE as ``||e_y - p||_1 = 2 (1 - p_y)``, twice this value (same minimiser, half the
    gradient).

    Inputs: ``logits`` (..., C), ``targets`` class ids (...).

    Args:
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citations: Ghosh, Kumar, Sastry, "Robust Loss Functions under Label Noise for Deep Neural
    Networks" (arXiv:1712.09482); Mao, Mohri, Zhong, "Cross-Entropy Loss Functions: Theoretical
    Analysis and Applications" (arXiv:2304.07288).
    """

    citation = (
        ("Robust Loss Functions under Label Noise for Deep Neural Networks", "arXiv:1712.09482"),
        ("Cross-Entropy Loss Functions: Theoretical Analysis and Applications", "arXiv:2304.07288"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(self, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return mean_absolute_error(
            logits, targets, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
