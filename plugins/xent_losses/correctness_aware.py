"""Correctness-aware (CA) calibration loss: class-balanced squared gap of confidence and correctness."""

from __future__ import annotations

import torch

from xent_core import BadInputError, validate
from xent_core.base_loss import Loss

from ._common import prepare, reduce

_WHO = "correctness-aware"


class CorrectnessAwareLoss(Loss):
    """Correctness-aware calibration loss: sum_i w_i (c_i - k_i)^2 / sum_i w_i, classes balanced.

    ``c_i = max_k softmax(z_i)_k`` is the confidence of the calibrated logits (with grad) and
    ``k_i = 1`` when the **base** model's argmax is the label (data, no gradient). With the batch
    accuracy ``a = mean k``, correct items get weight ``1 - a`` and wrong ones ``a``, so both groups
    count the same:

        L = sum_i w_i (c_i - k_i)^2 / sum_i w_i.

    ``balance=False`` gives the plain top-label Brier score ``mean (c - k)^2``; so does an
    all-correct or all-wrong batch (every weight would be 0). Per item, ``w_i (c_i - k_i)^2 /
    mean(w)`` (what ``reduction='none'`` returns), so ``mean`` is ``L``. Temperature scaling
    keeps the argmax, so ``base_logits`` defaults to ``logits``; a per-sample temperature net
    (the paper's calibrator) passes the uncalibrated logits as ``base_logits``.

    Inputs: ``logits`` (..., C), ``targets`` (...) class ids (``ignore_index`` marks ignored
    items), optional ``base_logits`` (..., C).

    Args:
        balance: weight correct and wrong items by the other group's share (the paper's loss).
        ignore_index: target id of ignored items.
        reduction: ``mean``, ``sum`` or ``none``.

    Citation: Liu, Wang, Zou, Zou, Zheng, "Optimizing Calibration by Gaining Aware of Prediction
    Correctness" (arXiv:2404.13016).
    """

    citation = (
        "Optimizing Calibration by Gaining Aware of Prediction Correctness",
        "arXiv:2404.13016",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self, balance: bool = True, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.balance = validate.flag("balance", balance)
        self.ignore_index = validate.integer("ignore_index", ignore_index)
        self.reduction = validate.reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        base_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b = prepare(
            logits, targets, who=_WHO, ignore_index=self.ignore_index, soft_ok=False, min_classes=2
        )
        assert b.ids is not None
        if base_logits is None:
            base = b.logits.detach()
        else:
            if not isinstance(base_logits, torch.Tensor) or base_logits.shape != logits.shape:
                raise BadInputError(
                    f"{_WHO}: base_logits must be a tensor of the logits' shape "
                    f"{tuple(logits.shape)}"
                )
            base = base_logits.detach().reshape(b.logits.shape)
        conf = torch.softmax(b.logits, dim=-1).max(dim=-1).values
        correct = (base.argmax(dim=-1) == b.ids).to(conf.dtype)
        sq = (conf - correct) ** 2
        weight = torch.ones_like(sq)
        if self.balance:
            count = b.valid.sum().clamp(min=1).to(sq.dtype)
            acc = torch.where(b.valid, correct, torch.zeros_like(correct)).sum() / count
            balanced = torch.where(correct > 0, 1.0 - acc, acc)
            degenerate = (acc <= 0) | (acc >= 1)  # one group empty: all weights would be 0
            weight = torch.where(degenerate, weight, balanced)
            mean_w = torch.where(b.valid, weight, torch.zeros_like(weight)).sum() / count
            weight = weight / mean_w.clamp(min=torch.finfo(sq.dtype).tiny)
        return reduce(weight * sq, b, self.reduction)

    def extra_repr(self) -> str:
        return f"balance={self.balance}, reduction={self.reduction!r}"
