"""CaPE: calibrated probability estimation, fine-tuning on empirical probabilities of sorted bins."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values


def cape_targets(
    probs: Any,
    labels: Any,
    *,
    method: str = "bin",
    n_bins: int = 10,
    sigma: float = 0.1,
    window: int = 500,
) -> np.ndarray:
    """(N,) CaPE targets: empirical positive rates around each prediction, over the **dataset**.

    Sort the detached predictions ``probs`` (N,). ``bin``: ``n_bins`` equal-count bins with
    boundaries ``int(i * N / n_bins)`` in sorted order, each item's target is its bin's positive
    rate. ``kde``: a Gaussian-weighted mean of the labels of the items within ``window`` places in
    sorted order, weights ``exp(-(p_j - p_i)^2 / (2 sigma^2))``. Ties are broken by a stable sort.

    Args:
        probs: (N,) predicted positive-class probabilities on the whole training set.
        labels: (N,) binary labels (0/1).
        method: ``bin`` or ``kde``.
        n_bins: bins of the ``bin`` method (10).
        sigma: kernel width of the ``kde`` method (0.1).
        window: neighbours on each side in sorted order for ``kde`` (500).
    """
    method = validate.choice("method", method, ("bin", "kde"))
    n_bins = validate.integer("n_bins", n_bins, low=1)
    sigma = validate.positive("sigma", sigma)
    window = validate.integer("window", window, low=1)
    p = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float64)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels, dtype=np.float64)
    if p.ndim != 1 or y.shape != p.shape or p.size == 0:
        raise BadInputError(
            f"cape_targets needs probs and labels of the same shape (N,), got {p.shape}, {y.shape}"
        )
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise BadInputError("cape_targets: probs must be probabilities in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise BadInputError("cape_targets: labels must be 0 or 1")
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    n = p.size
    out = np.empty(n)
    if method == "bin":
        edges = [int(i * n / n_bins) for i in range(n_bins + 1)]
        for lo, hi in itertools.pairwise(edges):
            if hi > lo:
                out[lo:hi] = ys[lo:hi].mean()
    else:
        for i in range(n):
            lo, hi = max(0, i - window), min(n, i + window + 1)
            w = np.exp(-((ps[lo:hi] - ps[i]) ** 2) / (2.0 * sigma**2))
            out[i] = float((w * ys[lo:hi]).sum() / w.sum())
    targets = np.empty(n)
    targets[order] = out
    return targets


class CaPELoss(Loss):
    """CaPE loss: cross-entropy to calibrated soft targets q from the sorted dataset (binary).

    Calibrated Probability Estimation fine-tunes a binary classifier on soft targets: every few
    epochs, predict ``p`` on the whole training set, then set each item's target ``q`` to the
    empirical positive rate of its neighbours in sorted order (:func:`cape_targets`); train with

        l = -[q log p + (1 - q) log(1 - p)]

    (plain cross-entropy on the labels in the other epochs). ``logits`` are one logit per item
    (..., ) (``p = sigmoid``) or two-class logits (..., 2) (``p = softmax[..., 1]``); ``targets``
    are the soft targets q (...,) in [0, 1]. Its minimum over p is at p = q.

    Args:
        reduction: ``mean``, ``sum`` or ``none``.

    Citation: Liu, Kaku, Zhu, Leibovich, Mohan, Yu, Zanna, Razavian, Fernandez-Granda, "Deep
    Probability Estimation" (arXiv:2111.10734).
    """

    citation = ("Deep Probability Estimation", "arXiv:2111.10734")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Two-class logits (9, 2) and soft targets q in [0, 1] (9,), for the sweep and tests."""
        return {
            "logits": torch.randn(9, 2, generator=generator) * 2,
            "targets": torch.rand(9, generator=generator),
        }

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = validate.reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise BadInputError("cape: logits must be a floating-point tensor")
        if not isinstance(targets, torch.Tensor) or not targets.is_floating_point():
            raise BadInputError("cape: targets must be soft targets q in [0, 1] (float tensor)")
        two_class = logits.dim() >= 1 and tuple(logits.shape[:-1]) == tuple(targets.shape)
        if two_class and logits.shape[-1] != 2:
            raise BadInputError(
                f"cape: two-class logits must have 2 columns, got {logits.shape[-1]}"
            )
        if not two_class and logits.shape != targets.shape:
            raise BadInputError(
                f"cape: logits (...,) or (..., 2) must match targets {tuple(targets.shape)}, "
                f"got {tuple(logits.shape)}"
            )
        check_finite_values(logits, "cape", "logits")
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        q = targets.to(device=logits.device, dtype=dtype)
        if input_checks_enabled() and not bool(((q >= 0) & (q <= 1)).all()):
            raise BadInputError("cape: targets must lie in [0, 1]")
        z = logits.to(dtype)
        s = z[..., 1] - z[..., 0] if two_class else z  # the log-odds of the positive class
        per = torch.nn.functional.binary_cross_entropy_with_logits(s, q, reduction="none")
        if self.reduction == "none":
            return per
        total = per.sum()
        return total if self.reduction == "sum" else total / max(1, per.numel())  # empty: 0


__all__ = ["CaPELoss", "cape_targets"]
