"""The shared base of the per-token divergence losses (kd, reverse-kl, jsd, skew-*, tvd)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from xent_core.base_loss import Loss

from . import _common as C
from ._linear_chunked import Spec, linear_distill


class DivergenceLoss(Loss):
    """Base class: common parameters, inputs and reduction; subclasses name the divergence.

    A subclass overrides :meth:`row_divergence` (and :meth:`output_scale` when it rescales the
    loss) and, if it has parameters of its own, an ``__init__`` that lists every parameter
    (xent reads a component's parameters from the nearest ``__init__``).

    Args:
        temperature: softmax temperature T of teacher and student (> 0).
        tail: tail of a top-k teacher, ``"bucket"`` (one extra cell) or ``"renormalise"``.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).
    """

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

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``f(teacher_logprobs, student_logprobs) -> (rows,)`` divergence per row."""
        raise NotImplementedError

    def output_scale(self) -> float:
        """Factor applied to every per-token value (``kd``'s T^2)."""
        return 1.0

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
            self.row_divergence(),
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
            scale=self.output_scale(),
        )


class LinearDivergenceLoss(Loss):
    """Base class of the fused linear distillation losses (``linear-kd``, ``linear-jsd``).

    Subclasses list every parameter in their ``__init__`` and override :meth:`spec`, which says
    what the chunked pass computes.

    Args:
        temperature: softmax temperature T of teacher and student (> 0).
        softcap: cap ``c`` of both sides' logits, ``c * tanh(z / c)`` (None: no cap).
        chunk_size: tokens per block of the chunked pass.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).
    """

    def __init__(
        self,
        temperature: float = 1.0,
        softcap: float | None = None,
        chunk_size: int = 256,
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.temperature = C.check_positive("temperature", temperature)
        self.softcap = C.check_softcap(softcap)
        self.chunk_size = C.check_int("chunk_size", chunk_size, 1)
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_choice("reduction", reduction, C.REDUCTIONS)
        self.vocab_align = C.check_choice("vocab_align", vocab_align, C.VOCAB_ALIGN)

    def spec(self) -> Spec:
        """The divergence, temperature, softcap and chunking of the fused pass."""
        raise NotImplementedError

    def forward(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        teacher_hidden: torch.Tensor,
        teacher_classifier: torch.Tensor,
        targets: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        teacher_bias: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        return linear_distill(
            self.spec(),
            hidden,
            classifier,
            teacher_hidden,
            teacher_classifier,
            targets,
            bias,
            teacher_bias,
            num_items,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            vocab_align=self.vocab_align,
        )
