"""``tvd``: total variation distance distillation."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from . import _common as C
from .functional import total_variation


class TVD(Loss):
    """Total variation distance distillation: (1/2) sum_c |p_teacher - q_student| at temperature T.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        tvd = 0.5 * sum_c |p_c - q_c|          (in [0, 1])

    Parameters: ``temperature`` (> 0, default 1.0), ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align`` (as in ``kd``).

    Citation: Wen, Li, Du, Mou, "f-Divergence Minimization for Sequence-Level Knowledge
    Distillation", arXiv:2307.15190.
    """

    citation = (
        "f-Divergence Minimization for Sequence-Level Knowledge Distillation",
        "arXiv:2307.15190",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        temperature: float = 1.0,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.temperature = C.check_positive("temperature", temperature)
        self.tail = C.check_tail(tail)
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_choice("reduction", reduction, C.REDUCTIONS)
        self.vocab_align = C.check_choice("vocab_align", vocab_align, C.VOCAB_ALIGN)

    def forward(
        self,
        logits: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        teacher_topk_ids: torch.Tensor | None = None,
        teacher_topk_logprobs: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        return C.divergence_loss(
            total_variation,
            logits,
            teacher_logits,
            teacher_topk_ids,
            teacher_topk_logprobs,
            targets,
            num_items,
            temperature=self.temperature,
            tail=self.tail,
            vocab_align=self.vocab_align,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
