"""Self-adjusting Dice loss for data-imbalanced classification."""

from __future__ import annotations

import math
from functools import partial

import torch

from xent_core import validate
from xent_core.base_loss import Loss

from ._common import (
    check_index,
    check_number,
    check_reduction,
    compute_dtype,
    prepare,
    reduce,
)
from ._fused_dice import FusedDice

_WHO = "dice"


def _log_one_minus_probs(logits: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """(N, C) ``log(1 - p_k)`` without cancellation or underflow.

    ``log1p(-p_k)`` is accurate where ``p_k <= 1/2``; only a row's most likely class can exceed
    1/2, and for it ``log(1 - p_m)`` is ``logsumexp_{k != m} z_k - logsumexp_k z_k`` (the log
    of the other classes' mass: exact at any margin, where ``1 - p`` would round to 0). With
    one class, ``1 - p = 0`` exactly: ``-inf`` (a constant). Masked classes (``-inf``) are
    floored at the dtype's lowest value inside the log-sum-exp so no row is all ``-inf``.
    """
    half = -math.log(2.0)
    from_p = torch.log1p(-torch.exp(logp.clamp(max=half)))
    if logits.shape[-1] < 2 or logits.shape[0] == 0:
        return torch.full_like(logp, float("-inf")).detach()
    lowest = torch.finfo(logits.dtype).min
    top = logits.argmax(-1, keepdim=True)
    others = logits.clamp_min(lowest).scatter(-1, top, lowest)
    rest = torch.logsumexp(others, -1, keepdim=True) - torch.logsumexp(logits, -1, keepdim=True)
    return from_p.scatter(-1, top, rest)


def dice_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.01,
    smooth: float = 1.0,
    square_denominator: bool = True,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`DiceLoss`."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, upcast=False)
    general = partial(_per_item, alpha=alpha, smooth=smooth, square=square_denominator)
    if b.ids is None or b.num_classes < 2 or b.num_items == 0 or torch.compiler.is_compiling():
        b.logits = b.logits.to(compute_dtype(b.logits))
        per_item = general(b.logits, b.one_hot())
    else:  # class ids: the chunked Function (exact in the same way, no (N, C) autograd graph)
        per_item = FusedDice.apply(
            b.logits, b.ids, b.valid, float(alpha), float(smooth), square_denominator, general
        )
    return reduce(per_item, b, reduction)


def _per_item(
    logits: torch.Tensor, y: torch.Tensor, *, alpha: float, smooth: float, square: bool
) -> torch.Tensor:
    """(N,) Dice losses by autograd ops in log space (any targets; the reference path)."""
    logp = torch.log_softmax(logits, dim=-1)
    if alpha:
        # t = (1 - p)^alpha * p in log space: exact at any margin, 0 where 1 - p is 0 (C = 1)
        p = torch.exp(alpha * _log_one_minus_probs(logits, logp) + logp)
    else:
        p = logp.exp()
    numerator = 2.0 * p * y + smooth
    if square:
        denominator = p.square() + y.square() + smooth
    else:
        denominator = p + y + smooth
    return (1.0 - numerator / denominator).sum(-1)


class DiceLoss(Loss):
    """Self-adjusting Dice loss: 1 - soft Dice of ((1 - p)^alpha p) vs the label, per class.

    For each item and class k, with ``p_k = softmax(logits)_k``, ``y_k`` the one-hot (or
    probability) target and the self-adjusted score ``t_k = (1 - p_k)^alpha * p_k``:

        l = sum_k [1 - (2 t_k y_k + gamma) / (t_k^2 + y_k^2 + gamma)]     (square_denominator)
        l = sum_k [1 - (2 t_k y_k + gamma) / (t_k + y_k + gamma)]         (otherwise)

    The factor ``(1 - p)^alpha`` pushes down the weight of easy items, like focal loss;
    ``gamma`` (``smooth``) smooths the ratio and keeps negatives (y = 0) in the gradient.
    Documented choice: the per-item, per-class form summed over classes follows the official
    implementation and its training scripts (alpha = 0.01, gamma = 1, squared denominator); the
    paper writes the per-item binary DSC with an unsquared denominator (``square_denominator=
    False``, alpha = 1).

    Inputs: ``logits`` (..., C), ``targets`` class ids (...) or probabilities (..., C).

    Args:
        alpha: exponent of the self-adjusting factor ``(1 - p)^alpha`` (>= 0).
        smooth: smoothing term gamma of the Dice ratio (> 0).
        square_denominator: square ``t`` and ``y`` in the denominator (the official code).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Li, Sun, Meng, Liang, Wu, Li, "Dice Loss for Data-imbalanced NLP Tasks"
    (arXiv:1911.02855), ACL 2020.
    """

    citation = ("Dice Loss for Data-imbalanced NLP Tasks", "arXiv:1911.02855")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        alpha: float = 0.01,
        smooth: float = 1.0,
        square_denominator: bool = True,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.smooth = check_number("smooth", smooth, low=0.0, low_open=True)
        self.square_denominator = validate.flag("square_denominator", square_denominator)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return dice_loss(
            logits,
            targets,
            alpha=self.alpha,
            smooth=self.smooth,
            square_denominator=self.square_denominator,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, smooth={self.smooth}, "
            f"square_denominator={self.square_denominator}, reduction={self.reduction!r}"
        )
