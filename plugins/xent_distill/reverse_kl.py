"""``reverse-kl``: reverse Kullback-Leibler distillation."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from . import _common as C
from .functional import reverse_kl


class ReverseKL(Loss):
    """Reverse KL distillation: KL(q_student || p_teacher) at temperature T (mode-seeking).

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        reverse_kl = sum_c q_c (log q_c - log p_c)

    No ``T^2`` factor (weight the term in a stack if you want one). A class the teacher rules out
    (probability 0, e.g. ``-inf`` logits) where the student keeps mass gives ``+inf``, the true
    value. Teacher forms, ``tail``, ``ignore_index``, ``reduction``, ``num_items`` and
    ``vocab_align`` as in ``kd``.

    Parameters: ``temperature`` (> 0, default 1.0), ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``.

    Citation: Gu, Dong, Wei, Huang, "MiniLLM: Knowledge Distillation of Large Language Models",
    arXiv:2306.08543.
    """

    citation = ("MiniLLM: Knowledge Distillation of Large Language Models", "arXiv:2306.08543")
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
            reverse_kl,
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
