"""The comp-sum family of Mao, Mohri and Zhong: a transform of the sum of exponential margins."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import (
    check_index,
    check_number,
    check_reduction,
    prepare,
    reduce,
    target_nll,
)

_WHO = "comp-sum"


def comp_sum_from_log_prob(log_p: torch.Tensor, tau: float) -> torch.Tensor:
    """``Phi^tau`` written with ``log p_y``: ``-log p`` at tau=1, ``(1 - p^(tau-1)) / (tau-1)`` else.

    ``-expm1((tau - 1) * log p) / (tau - 1)`` is accurate for tau near 1 and for p near 1.
    """
    if tau == 1.0:
        return -log_p
    return -torch.expm1((tau - 1.0) * log_p) / (tau - 1.0)


def comp_sum_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    tau: float = 1.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    who: str = _WHO,
) -> torch.Tensor:
    """Functional form of :class:`CompSumLoss`."""
    b = prepare(logits, targets, who=who, ignore_index=ignore_index, soft_ok=False)
    return reduce(comp_sum_from_log_prob(-target_nll(b), tau), b, reduction)


class CompSumLoss(Loss):
    """Comp-sum loss (tau): tau=0 sum-exponential, 1 cross-entropy, 1+q GCE, 2 MAE (1 - p_y).

    With ``u = sum_{k != y} exp(logits_k - logits_y) = 1/p_y - 1`` the comp-sum loss is
    ``Phi^tau(u)`` where ``Phi^1(u) = log(1 + u)`` and
    ``Phi^tau(u) = (1 - (1 + u)^(1 - tau)) / (tau - 1)`` for tau != 1, i.e.

        l = -log p_y                         (tau = 1, cross-entropy)
        l = (1 - p_y^(tau - 1)) / (tau - 1)  (tau != 1)

    so tau = 0 gives the sum-exponential loss ``1/p_y - 1``, tau = 1 + q the generalized
    cross-entropy with parameter q, and tau = 2 the mean absolute error ``1 - p_y``. It is computed
    from ``log p_y`` with ``expm1``, stable in float32 for any tau >= 0.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...).

    Args:
        tau: member of the family (>= 0): 0 sum-exponential, 1 cross-entropy, 2 MAE.
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Mao, Mohri, Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis and
    Applications" (arXiv:2304.07288), section 3 (comp-sum losses).
    """

    citation = (
        "Cross-Entropy Loss Functions: Theoretical Analysis and Applications",
        "arXiv:2304.07288",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(self, tau: float = 1.0, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.tau = check_number("tau", tau, low=0.0)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return comp_sum_loss(
            logits, targets, tau=self.tau, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, reduction={self.reduction!r}"
