"""Shared base: parameters and inputs live here, not in the registered class."""

import torch

from xent_core.base_loss import Loss


class SharedBase(Loss):
    """Shared base (its docstring is not the component's)."""

    citation = ("Base paper", "arXiv:0000.00002")
    capabilities = {"devices": ("cpu",)}

    def __init__(self, scale: float = 2.0, reduction: str = "mean") -> None:
        super().__init__()
        self.scale, self.reduction = scale, reduction

    def forward(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale * (logits**2).mean()
