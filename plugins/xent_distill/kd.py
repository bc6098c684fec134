"""``kd``: Hinton knowledge distillation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _params as P
from ._divergence import DivergenceLoss
from ._fused import Rule
from .functional import forward_kl


class KD(DivergenceLoss):
    """Hinton knowledge distillation: T^2 * KL(p_teacher || q_student) at temperature T.

    Per token, with ``p = softmax(t / T)`` (teacher) and ``q = softmax(s / T)`` (student)::

        kd = T^2 * sum_c p_c (log p_c - log q_c)

    The ``T^2`` factor keeps the gradient scale independent of ``T`` (Hinton et al., section 2);
    peers disagree on it, so it is explicit: ``scale_by_t2=False`` drops it. The teacher is
    ``teacher_logits`` (..., C) or a top-k teacher (``teacher_topk_ids`` + ``teacher_topk_logprobs``,
    tail treated as ``tail`` says, see the distillation docs); it is never differentiated.

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``DivergenceLoss``.

    Args:
        scale_by_t2: multiply by ``T^2``, keeping the gradient scale independent of T.

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
        super().__init__(temperature, tail, ignore_index, reduction, vocab_align)
        self.scale_by_t2 = P.flag("scale_by_t2", scale_by_t2)

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return forward_kl

    def rule(self) -> Rule:
        return Rule("kl", self.temperature, self.output_scale())

    def output_scale(self) -> float:
        return self.temperature**2 if self.scale_by_t2 else 1.0

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, scale_by_t2={self.scale_by_t2}"
