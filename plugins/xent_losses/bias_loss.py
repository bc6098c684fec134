"""Bias Loss: cross-entropy re-weighted by the variance of each item's features."""

from __future__ import annotations

import torch

from xent_core import BadInputError
from xent_core.base_loss import Loss

from ._common import (
    check_finite_values,
    check_index,
    check_number,
    check_reduction,
    per_item_input,
    prepare,
    reduce,
    target_nll,
)

_WHO = "bias-loss"


def feature_variance_weights(
    features: torch.Tensor, valid: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """``z(v) = exp(alpha * v) - beta`` with v the per-item feature variance scaled to [0, 1].

    ``features`` is (N, M) (M >= 2, detached); the unbiased variance of each row is min-max scaled
    over the valid rows of the batch. If all valid variances are equal, v = 0.
    """
    if features.shape[0] == 0:
        return features.new_zeros(0)
    var = features.var(dim=1)
    big = torch.finfo(var.dtype).max
    lo = torch.where(valid, var, torch.full_like(var, big)).min()
    hi = torch.where(valid, var, torch.full_like(var, -big)).max()
    span = hi - lo
    v = torch.where(span > 0, (var - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)
    v = torch.where(valid, v, torch.zeros_like(v))
    return torch.exp(alpha * v) - beta


def bias_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    features: torch.Tensor,
    *,
    alpha: float = 0.3,
    beta: float = 0.3,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`BiasLoss`."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, soft_ok=False)
    feats = per_item_input(features, "features", b, _WHO, trailing=True)
    if feats.shape[1] < 2:
        raise BadInputError(
            f"{_WHO}: features need at least 2 values per item to have a variance, "
            f"got shape {tuple(features.shape)}"
        )
    feats = feats.detach().to(b.logits.dtype)
    weights = feature_variance_weights(feats, b.valid, alpha, beta)
    return reduce(weights * target_nll(b), b, reduction)


class BiasLoss(Loss):
    """Bias Loss: cross-entropy weighted by exp(alpha v) - beta, v the scaled feature variance.

    ``l_i = z(v_i) * (-log p_{i, y_i})`` with ``z(v) = exp(alpha * v) - beta``, where ``v_i`` is
    the variance of item i's features (e.g. the last convolutional feature maps, or hidden
    states), min-max scaled to [0, 1] over the non-ignored items of the batch. Items whose
    features carry little information (low variance) get a smaller weight, reducing the push
    from random predictions. The weights are not differentiated (features are detached).

    ``features`` has the logits' leading shape followed by any per-item dims (flattened),
    e.g. (N, C, H, W) for logits (N, K), or (B, T, D) for logits (B, T, V). Documented choices:
    the paper's weight ``exp(alpha v) - beta`` (the public code uses ``exp(beta v) - 1 + alpha``,
    a constant shift of the same curve for alpha = beta); per-batch min-max scaling (the paper's
    description; the code also offers a running minimum); unbiased variance (torch.var default).

    Inputs: ``logits`` (..., C), ``targets`` class ids (...), ``features`` (..., *).

    Args:
        alpha: slope of the weight ``exp(alpha v) - beta`` in the scaled variance ``v``.
        beta: offset of the weight (< 1, so weights stay positive).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Abrahamyan, Ziatchin, Chen, Deligiannis, "Bias Loss for Mobile Neural Networks"
    (arXiv:2107.11170), ICCV 2021.
    """

    citation = ("Bias Loss for Mobile Neural Networks", "arXiv:2107.11170")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}
    inputs = ("logits", "targets", "features")
    optional_inputs = ()

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.3,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.beta = check_number("beta", beta, high=1.0, high_open=True)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if features is None:
            raise BadInputError(
                f"{_WHO} needs the input 'features' (per-item feature maps or hidden states "
                "whose variance sets each item's weight)"
            )
        if isinstance(features, torch.Tensor):
            check_finite_values(features, _WHO, "features")
        return bias_loss(
            logits,
            targets,
            features,
            alpha=self.alpha,
            beta=self.beta,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, reduction={self.reduction!r}"
