"""Poly-1 loss: cross-entropy plus epsilon times the first polynomial term (1 - p_t)."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import (
    check_index,
    check_number,
    check_reduction,
    log_probs,
    prepare,
    reduce,
    soft_nll,
    target_nll,
)

_WHO = "poly1"


def poly1_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    epsilon: float = 1.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`Poly1Loss`."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index)
    if b.probs is not None:
        logp = log_probs(b)
        ce = soft_nll(b.probs, logp)
        p_t = (b.probs * logp.exp()).sum(-1)
        per_item = ce + epsilon * (1.0 - p_t)
    else:
        assert b.ids is not None
        log_pt = -target_nll(b)
        per_item = -log_pt - epsilon * torch.expm1(log_pt)
    return reduce(per_item, b, reduction)


class Poly1Loss(Loss):
    """Poly-1 loss CE + epsilon (1 - p_t): one extra polynomial coefficient over cross-entropy.

    ``l = -log p_t + epsilon * (1 - p_t)``. For probability targets ``q`` (e.g. smoothed labels)
    the paper's form is used: ``p_t = sum_k q_k p_k`` and ``-log p_t`` becomes
    ``-sum_k q_k log p_k``. epsilon = 0 gives exactly cross-entropy; epsilon = -1 removes the
    leading polynomial term.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...) or probabilities (..., C).

    Args:
        epsilon: coefficient of the ``(1 - p_t)`` term (>= -1).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
    Functions" (arXiv:2204.12511).
    """

    citation = (
        "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions",
        "arXiv:2204.12511",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self, epsilon: float = 1.0, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.epsilon = check_number("epsilon", epsilon, low=-1.0)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return poly1_loss(
            logits,
            targets,
            epsilon=self.epsilon,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, reduction={self.reduction!r}"
