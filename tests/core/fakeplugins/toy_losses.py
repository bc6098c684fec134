"""Toy components for the core tests (imports torch: must load lazily)."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss


class ToyCE(Loss):
    """Toy cross-entropy.

    loss = logsumexp(logits) - logits[target].
    """

    citation = ("A toy paper", "arXiv:0000.00001")
    capabilities = {"differentiable": True, "devices": ("cpu",)}

    def __init__(self, reduction: str = "mean", scale: float = 1.0) -> None:
        super().__init__()
        self.reduction = reduction
        self.scale = scale

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
    ):
        per = torch.logsumexp(logits, -1) - logits.gather(-1, targets[..., None])[..., 0]
        per = per * self.scale
        if self.reduction == "none":
            return per
        return per.sum() if self.reduction == "sum" else per.mean()


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
