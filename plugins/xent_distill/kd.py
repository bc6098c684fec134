"""``kd``: Hinton knowledge distillation."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from . import _common as C
from .functional import forward_kl


class KD(Loss):
    """Hinton knowledge distillation: T^2 * KL(p_teacher || q_student) at temperature T.

    Per token, with ``p = softmax(t / T)`` (teacher) and ``q = softmax(s / T)`` (student)::

        kd = T^2 * sum_c p_c (log p_c - log q_c)

    The ``T^2`` factor keeps the gradient scale independent of ``T`` (Hinton et al., section 2);
    peers disagree on it, so it is explicit: ``scale_by_t2=False`` drops it. The teacher is
    ``teacher_logits`` (..., C) or a top-k teacher (``teacher_topk_ids`` + ``teacher_topk_logprobs``,
    tail treated as ``tail`` says, see the distillation docs); it is never differentiated.

    Parameters: ``temperature`` (> 0, default 1.0), ``scale_by_t2`` (default True), ``tail``
    (``"bucket"`` or ``"renormalise"``, for top-k teachers), ``ignore_index`` (rows whose
    ``targets`` equal it are masked, default -100), ``reduction`` (``mean`` over kept rows, or
    ``num_items`` when given; ``sum``; ``none``), ``vocab_align`` (``"error"`` or ``"truncate"``).

    Citation: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    arXiv:1503.02531.
    """

    citation = ("Distilling the Knowledge in a Neural Network", "arXiv:1503.02531")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        temperature: float = 1.0,
        scale_by_t2: bool = True,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.temperature = C.check_positive("temperature", temperature)
        self.scale_by_t2 = bool(scale_by_t2)
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
            forward_kl,
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
            scale=self.temperature**2 if self.scale_by_t2 else 1.0,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, scale_by_t2={self.scale_by_t2}"
