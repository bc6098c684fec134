"""LDR-KL: the label-distributionally robust loss with a KL-divergence regulariser."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xent_core.base_loss import Loss

from ._common import Batch, check_index, check_number, check_reduction, choice, prepare, reduce

_WHO = "ldr-kl"
NORMALIZATIONS = ("softplus-mean", "abs-mean", "none")


def normalize_scores(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale (N, C) scores as the official LDR code does before the loss.

    ``softplus-mean``: ``s = softplus(f) / mean_k softplus(f_k)`` (positive, mean 1);
    ``abs-mean``: ``s = f / mean_k |f_k|`` (mean absolute value 1); ``none``: ``s = f``.
    """
    if mode == "softplus-mean":
        # softplus(f) underflows to 0 below f ~ -104 in float32 (0 / 0 = NaN once a whole row is
        # that negative). s is unchanged by scaling softplus(f) and softplus(f - c) = e^-c
        # softplus(f) to relative e^(f - c) < 1e-13 once f - c <= -30, so a row whose maximum is
        # below -30 is shifted by c = max + 30 (not differentiated: a constant per row).
        shift = (logits.detach().amax(dim=-1, keepdim=True) + 30.0).clamp_(max=0.0)
        sp = F.softplus(logits - shift)
        return sp / sp.mean(dim=-1, keepdim=True)
    if mode == "abs-mean":
        scale = logits.abs().mean(dim=-1, keepdim=True)
        return logits / scale.clamp_min(torch.finfo(logits.dtype).tiny)
    return logits


def margin_gaps(batch: Batch, scores: torch.Tensor, margin: float) -> torch.Tensor:
    """(N, C) ``d_k = margin * [k != y] + s_k - s_y`` (zero at k = y)."""
    assert batch.ids is not None
    s_y = scores.gather(1, batch.ids[:, None])
    return (scores - (s_y - margin)).scatter_(1, batch.ids[:, None], 0.0)


def ldr_kl_from_gaps(gaps: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """(N,) ``lam * log((1/C) sum_k exp(d_k / lam))``; ``lam`` a number or an (N,) tensor."""
    if isinstance(lam, torch.Tensor):
        lam = lam[:, None]
    num_classes = gaps.shape[-1]
    out = lam * (torch.logsumexp(gaps / lam, dim=-1, keepdim=True) - math.log(num_classes))
    return out.squeeze(-1)


def ldr_kl_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    margin: float = 0.1,
    lam: float | torch.Tensor = 10.0,
    normalize: str = "softplus-mean",
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`LDRKLLoss`; ``lam`` may be a per-item tensor of shape (...)."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, soft_ok=False)
    gaps = margin_gaps(b, normalize_scores(b.logits, normalize), margin)
    if isinstance(lam, torch.Tensor):
        lam = lam.reshape(-1).to(device=gaps.device, dtype=gaps.dtype)
    return reduce(ldr_kl_from_gaps(gaps, lam), b, reduction)


class LDRKLLoss(Loss):
    """LDR-KL: worst case over label distributions near uniform (KL-regularised), with a margin.

    The label-distributionally robust loss takes the worst label distribution p over the simplex,
    penalised by its KL divergence to uniform:
    ``l = max_p sum_k p_k (d_k) - lam * KL(p || 1/C) = lam * log((1/C) sum_k exp(d_k / lam))``
    with ``d_k = margin * [k != y] + s_k - s_y``. ``lam -> 0`` approaches the Crammer-Singer
    hinge loss, ``lam -> inf`` the mean of the gaps; with ``normalize='none'`` and
    ``margin = 0`` it is the temperature-scaled cross-entropy minus ``lam * log C``
    (``lam = 1``: cross-entropy - log C).

    Scores ``s``: the official code rescales the logits first; ``normalize`` picks how:
    ``softplus-mean`` (default, the official LDR-KL: ``softplus(f) / mean softplus(f)``),
    ``abs-mean`` (``f / mean |f|``, the official ALDR-KL) or ``none``.

    Inputs: ``logits`` (..., C), ``targets`` class ids (...). Defaults are those of the official
    experiment script.

    Args:
        margin: margin added to the gaps of the wrong classes (>= 0).
        lam: temperature of the KL penalty (> 0).
        normalize: score rescaling, ``softplus-mean``, ``abs-mean`` or ``none``.
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
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        margin: float = 0.1,
        lam: float = 10.0,
        normalize: str = "softplus-mean",
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.margin = check_number("margin", margin, low=0.0)
        self.lam = check_number("lam", lam, low=0.0, low_open=True)
        self.normalize = choice("normalize", normalize, NORMALIZATIONS)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ldr_kl_loss(
            logits,
            targets,
            margin=self.margin,
            lam=self.lam,
            normalize=self.normalize,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, lam={self.lam}, normalize={self.normalize!r}, "
            f"reduction={self.reduction!r}"
        )
