"""Symmetric cross-entropy consistency between a student and an EMA teacher (Robust Mean Teacher)."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_logits, check_logits, compute_dtype

_WHO = "symmetric-ce"


def row_mask(
    mask: torch.Tensor | None, lead: torch.Size, device: torch.device
) -> torch.Tensor | None:
    """(N,) bool of the rows that count, from an optional mask of the leading shape (None: all)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(lead):
        raise BadInputError(f"mask must be a tensor of shape {tuple(lead)}")
    return mask.to(device).bool().reshape(-1)


def masked_reduce(
    per: torch.Tensor, valid: torch.Tensor | None, lead: torch.Size, how: str
) -> torch.Tensor:
    """``none`` (leading shape, 0 where masked), ``sum`` or ``mean`` over the valid rows."""
    if valid is not None:
        per = torch.where(valid, per, torch.zeros_like(per))
    if how == "none":
        return per.reshape(lead)
    if how == "sum":
        return per.sum()
    if valid is None:
        return per.sum() / max(per.numel(), 1)
    return per.sum() / valid.sum().clamp(min=1).to(per.dtype)


class SymmetricCELoss(Loss):
    """Symmetric CE consistency: -(1-alpha) sum q log p - alpha sum p log q (student p, teacher q).

    With ``p = softmax(logits / T)`` (student) and ``q = softmax(teacher_logits / T)`` (an EMA
    teacher, detached),

        l = -(1 - alpha) sum_c q_c log p_c - alpha sum_c p_c log q_c.

    The first term is the usual soft-target cross-entropy; the second also sends gradient
    through p (unlike KD), which makes the consistency loss robust to a wrong teacher early in
    test-time adaptation. alpha = 0.5 is the paper's. This is the soft-target consistency form,
    **not** Wang et al.'s 2019 "symmetric cross entropy" for noisy hard labels (alpha CE + beta
    reverse CE with log 0 clamped).

    Inputs: ``logits`` (..., C), ``teacher_logits`` (..., C), optional ``mask`` (...) of the rows
    that count.

    Args:
        alpha: weight of the reverse term (0.5).
        temperature: softmax temperature of both distributions (1).
        reduction: ``mean`` (over unmasked rows), ``sum`` or ``none``.

    Citation: Dobler, Marsden, Yang, "Robust Mean Teacher for Continual and Gradual Test-Time
    Adaptation" (arXiv:2211.13081).
    """

    citation = (
        "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation",
        "arXiv:2211.13081",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self, alpha: float = 0.5, temperature: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.alpha = validate.unit_interval("alpha", alpha)
        self.temperature = validate.positive("temperature", temperature)
        self.reduction = validate.reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_logits(logits, _WHO, min_classes=2)
        check_logits(teacher_logits, _WHO)
        if input_checks_enabled():
            check_finite_logits(logits.reshape(-1, logits.shape[-1]), _WHO)
            check_finite_logits(teacher_logits.reshape(-1, teacher_logits.shape[-1]), _WHO)
        if teacher_logits.shape != logits.shape:
            raise BadInputError(
                f"{_WHO}: teacher_logits {tuple(teacher_logits.shape)} must match logits "
                f"{tuple(logits.shape)}"
            )
        lead = logits.shape[:-1]
        valid = row_mask(mask, lead, logits.device)
        dtype = compute_dtype(logits)
        c = logits.shape[-1]
        s = logits.reshape(-1, c).to(dtype)
        t = teacher_logits.detach().reshape(-1, c).to(device=s.device, dtype=dtype)
        if self.temperature != 1:
            s, t = s / self.temperature, t / self.temperature
        log_p, log_q = torch.log_softmax(s, dim=-1), torch.log_softmax(t, dim=-1)
        forward_term = -(log_q.exp() * log_p).sum(dim=-1)
        reverse_term = -(log_p.exp() * log_q).sum(dim=-1)
        per = (1.0 - self.alpha) * forward_term + self.alpha * reverse_term
        return masked_reduce(per, valid, lead, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}, reduction={self.reduction!r}"
