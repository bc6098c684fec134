"""ALDR-KL: the adaptive LDR-KL loss, with one temperature per training sample kept as state."""

from __future__ import annotations

import math

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import (
    check_index,
    check_number,
    check_reduction,
    choice,
    per_item_input,
    prepare,
    reduce,
)
from .ldr_kl import NORMALIZATIONS, ldr_kl_from_gaps, margin_gaps, normalize_scores

_WHO = "aldr-kl"


class ALDRKLLoss(Loss):
    """ALDR-KL: LDR-KL with a per-sample temperature adapted to how noisy each label looks.

    Each training sample i keeps its own ``lam_i`` (a buffer indexed by ``sample_ids``, so it is
    saved by ``state_dict``; initialised to ``lam0``). The loss maximises jointly over the label
    distribution p and lam:
    ``max_{p, lam} sum_k p_k d_k - lam * KL(p || 1/C) - (alpha log C / (2 lam0)) (lam - lam0)^2``,
    ``d_k = margin * [k != y] + s_k - s_y``, solved by one alternating step per visit, as in the
    official code:

    1. ``p = softmax(d / lam_i)`` (the maximiser for the stored lam_i), ``kl = KL(p || 1/C)``;
    2. ``lam_i <- lam0 * (1 - kl / (alpha log C))`` (the maximiser over lam; it lies in
       ``[lam0 (1 - 1/alpha), lam0]``), stored only in training mode and never differentiated;
    3. ``l = lam_i * log((1/C) sum_k exp(d_k / lam_i)) - (alpha log C / (2 lam0)) (lam_i - lam0)^2``.

    Confident samples (p far from uniform) get a small lam (close to a hinge loss); samples
    the model disagrees with get lam near lam0 (close to the robust mean of the gaps).
    Documented choice: step 1 uses the margin gaps ``d`` (the exact inner maximiser); the
    official script uses ``softmax(s / lam_i)`` without the margin and adds 1e-5 to p; with
    ``margin = 0`` the two coincide.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...), ``sample_ids`` int (...) in
    [0, num_samples). Defaults are those of the official experiment script.

    Args:
        num_samples: size of the training set (number of per-sample temperatures).
        margin: margin added to the gaps of the wrong classes (>= 0).
        lam0: initial and largest temperature (> 0).
        alpha: strength of the pull of lam towards lam0 (> 1).
        normalize: score rescaling, ``abs-mean`` (``f / mean |f|``, the official ALDR-KL),
            ``softplus-mean`` or ``none``.
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Zhu, Ying, Yang, "Label Distributionally Robust Losses for Multi-class
    Classification: Consistency, Robustness and Adaptivity" (arXiv:2112.14869), ICML 2023.
    """

    citation = (
        "Label Distributionally Robust Losses for Multi-class Classification: Consistency, "
        "Robustness and Adaptivity",
        "arXiv:2112.14869",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda"), "stateful": True}
    inputs = ("logits", "targets", "sample_ids")
    optional_inputs = ()

    def __init__(
        self,
        num_samples: int,
        margin: float = 0.1,
        lam0: float = 10.0,
        alpha: float = 2.0,
        normalize: str = "abs-mean",
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        n = self.num_samples = validate.integer("num_samples", num_samples, low=1)
        self.margin = check_number("margin", margin, low=0.0)
        self.lam0 = check_number("lam0", lam0, low=0.0, low_open=True)
        self.alpha = check_number("alpha", alpha, low=1.0, low_open=True)
        self.normalize = choice("normalize", normalize, NORMALIZATIONS)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)
        self.register_buffer("lambdas", torch.full((n,), self.lam0, dtype=torch.float64))

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b = prepare(
            logits, targets, who=_WHO, ignore_index=self.ignore_index, soft_ok=False, min_classes=2
        )
        ids = per_item_input(sample_ids, "sample_ids", b, _WHO, kind="int").long()
        ids = ids.to(self.lambdas.device)
        bad = b.valid.to(ids.device) & ((ids < 0) | (ids >= self.num_samples))
        if input_checks_enabled() and bool(bad.any()):
            raise BadInputError(
                f"{_WHO}: sample id {int(ids[bad][0])} is out of range [0, {self.num_samples}) "
                "(num_samples is the size of the training set)"
            )
        ids = torch.where(b.valid.to(ids.device), ids, torch.zeros_like(ids))
        gaps = margin_gaps(b, normalize_scores(b.logits, self.normalize), self.margin)
        log_c = math.log(b.num_classes)
        with torch.no_grad():
            lam_old = self.lambdas[ids].to(device=gaps.device, dtype=gaps.dtype)
            log_p = torch.log_softmax(gaps / lam_old[:, None], dim=-1)
            p = log_p.exp()  # 0 * (-inf) is 0 here: a masked class has no mass
            kl = torch.where(p > 0, p * (log_p + log_c), torch.zeros_like(p)).sum(-1)
            lam = self.lam0 * (1.0 - kl / (self.alpha * log_c))
            lam = lam.clamp(self.lam0 * (1.0 - 1.0 / self.alpha), self.lam0)
            if self.training:
                keep = b.valid.to(ids.device)
                self.lambdas[ids[keep]] = lam.to(self.lambdas)[keep.to(lam.device)]
        penalty = (self.alpha * log_c / (2.0 * self.lam0)) * (lam - self.lam0).square()
        return reduce(ldr_kl_from_gaps(gaps, lam) - penalty, b, self.reduction)

    def extra_repr(self) -> str:
        return (
            f"num_samples={self.num_samples}, margin={self.margin}, lam0={self.lam0}, "
            f"alpha={self.alpha}, normalize={self.normalize!r}, reduction={self.reduction!r}"
        )
