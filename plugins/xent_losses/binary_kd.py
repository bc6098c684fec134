"""Binary (sigmoid) distillation of soft yes/no targets, e.g. MLLM aspect answers."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values
from .symmetric_ce import masked_reduce, row_mask

_WHO = "binary-kd"


class BinaryKDLoss(Loss):
    """Binary KD: BCE-with-logits of student logits s/T against soft teacher probabilities t.

    Each element is an independent yes/no question (an "aspect"); the teacher gives
    ``t = P(yes)``, either directly (``teacher_probs``) or as ``sigmoid(teacher_logits / T)``:

        l = -[t log sigmoid(s / T) + (1 - t) log(1 - sigmoid(s / T))].

    The minimum over s is the teacher's binary entropy H(t), not 0;
    ``subtract_target_entropy=True`` reports ``l - H(t)``, the KL divergence, with a zero floor
    (same gradient). No T^2 factor (this is not Hinton KD). Stack it with ``cross-entropy`` on the
    class logits for the paper's multi-aspect distillation.

    Inputs: ``logits`` (...) student logits, one of ``teacher_probs`` (...) in [0, 1] or
    ``teacher_logits`` (...), optional ``mask`` (...).

    Args:
        temperature: divides the student (and teacher) logits (1).
        subtract_target_entropy: report KL(t || sigmoid(s/T)) instead of the BCE.
        reduction: ``mean`` (over unmasked elements), ``sum`` or ``none``.

    Citation: Lee, Bang, Kwon, Kim, "Multi-aspect Knowledge Distillation with Large Language
    Model" (arXiv:2501.13341).
    """

    citation = ("Multi-aspect Knowledge Distillation with Large Language Model", "arXiv:2501.13341")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        temperature: float = 1.0,
        subtract_target_entropy: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.temperature = validate.positive("temperature", temperature)
        self.subtract_target_entropy = validate.flag(
            "subtract_target_entropy", subtract_target_entropy
        )
        self.reduction = validate.reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor,
        teacher_probs: torch.Tensor | None = None,
        teacher_logits: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise BadInputError(f"{_WHO}: logits must be a floating-point tensor")
        if (teacher_probs is None) == (teacher_logits is None):
            raise BadInputError(f"{_WHO}: pass exactly one of teacher_probs or teacher_logits")
        teacher = teacher_probs if teacher_probs is not None else teacher_logits
        if not isinstance(teacher, torch.Tensor) or teacher.shape != logits.shape:
            raise BadInputError(
                f"{_WHO}: the teacher must be a tensor of the logits' shape {tuple(logits.shape)}"
            )
        if not teacher.is_floating_point():
            raise BadInputError(f"{_WHO}: the teacher must be a floating-point tensor")
        check_finite_values(logits, _WHO, "logits")
        check_finite_values(teacher, _WHO, "the teacher")
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        temp = self.temperature
        s = logits.to(dtype)
        s = s if temp == 1 else s / temp
        t = teacher.detach().to(device=s.device, dtype=dtype)
        if teacher_logits is not None:
            t = torch.sigmoid(t if temp == 1 else t / temp)
        elif input_checks_enabled() and t.numel():
            lo, hi = torch.aminmax(t)
            if not bool((lo >= 0) & (hi <= 1)):
                raise BadInputError(f"{_WHO}: teacher_probs must lie in [0, 1]")
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        plain = mask is None and not self.subtract_target_entropy and self.reduction != "none"
        if plain and s.numel():  # the fused mean / sum
            return bce(s, t, reduction=self.reduction)
        per = bce(s.reshape(-1), t.reshape(-1), reduction="none")
        if self.subtract_target_entropy:
            entropy = -(torch.special.xlogy(t, t) + torch.special.xlogy(1 - t, 1 - t))
            per = per - entropy.reshape(-1)
        valid = row_mask(mask, logits.shape, logits.device)
        return masked_reduce(per, valid, logits.shape, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"
