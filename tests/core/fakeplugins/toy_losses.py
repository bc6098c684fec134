"""Toy components for the core tests (imports torch: must load lazily)."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss


class ToyCE(Loss):
    """Toy cross-entropy.

    loss = logsumexp(logits) - logits[target].
    """

    citation = ("A toy paper", "arXiv:0000.00001")
    capabilities = {"differentiable": True, "devices": ("cpu",)}

    ignore_index = -100  # a constant: the core tests pin this loss's parameter list

    def __init__(self, reduction: str = "mean", scale: float = 1.0) -> None:
        super().__init__()
        self.reduction = validate.reduction(reduction)
        self.scale = validate.number("scale", scale)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
    ):
        if not logits.is_floating_point() or targets.is_floating_point():
            raise BadInputError("logits must be floating point and targets integer class ids")
        if targets.shape != logits.shape[:-1]:
            raise BadInputError("targets must have the shape of logits without the class dim")
        keep = targets != self.ignore_index
        if input_checks_enabled():
            if not torch.isfinite(logits).all():
                raise BadInputError("logits contain NaN or inf")
            if ((targets[keep] < 0) | (targets[keep] >= logits.shape[-1])).any():
                raise BadInputError("targets out of range")
        safe = torch.where(keep, targets, 0)
        per = torch.logsumexp(logits, -1) - logits.gather(-1, safe[..., None])[..., 0]
        per = torch.where(keep, per * self.scale, 0.0)
        if self.reduction == "none":
            return per
        if self.reduction == "sum":
            return per.sum()
        return per.sum() / keep.sum().clamp(min=1)


class ToySquare(Loss):
    """Mean square of the logits."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits**2).mean()


class ToyDistance(Loss):
    """Mean squared distance between student and teacher logits."""

    inputs = ("logits", "teacher_logits")

    def forward(self, a, b):
        return ((a - b) ** 2).mean()


class ToyKernel:
    """A kernel that needs a package that does not exist."""

    def available(self):
        return False, "no_such_pkg_xyz is not installed"


def count_unique(min_count: int = 1):
    """Factory: an estimator counting distinct values."""
    return lambda x: float(len(set(x)))
