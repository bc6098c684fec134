"""The shared base of the per-token divergence losses (kd, reverse-kl, jsd, skew-*, tvd)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from xent_core import BadInputError
from xent_core.base_loss import Loss

from . import _params as P
from ._fused import Rule, divergence_rows, mixture_rule
from ._inputs import (
    align_vocab,
    as_rows,
    check_lead,
    check_num_items,
    check_student_finite,
    compute_dtype,
    target_mask,
)
from ._linear_chunked import Spec, linear_distill
from ._reduce import reduce_rows
from ._support import soft_pair
from ._teacher import read_teacher
from .functional import skew_forward_kl, skew_reverse_kl


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
        self.temperature = P.temperature(temperature)
        self.tail = P.tail(tail)
        self.ignore_index = P.ignore_index(ignore_index)
        self.reduction = P.reduction(reduction)
        self.vocab_align = P.vocab_align(vocab_align)

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``f(teacher_logprobs, student_logprobs) -> (rows,)`` divergence per row."""
        raise NotImplementedError

    def rule(self) -> Rule | None:
        """The fused form of the divergence on full teacher logits (None: the general path)."""
        return None

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
        return divergence_loss(
            self.row_divergence(),
            self.rule(),
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


class SkewDivergence(DivergenceLoss):
    """Base of ``skew-kl`` and ``skew-reverse-kl``: one side against its mixture with the other.

    ``skew-kl`` is ``KL(p || alpha p + (1 - alpha) q)`` and ``skew-reverse-kl`` is
    ``KL(q || alpha q + (1 - alpha) p)``; a subclass says which by ``reverse``. ``alpha = 0`` is
    the plain forward / reverse KL, ``alpha = 1`` gives 0 (still attached to the graph).

    Args:
        alpha: weight of the mixed-in distribution, in [0, 1].
        temperature: softmax temperature T of teacher and student (> 0).
        tail: tail of a top-k teacher, ``"bucket"`` (one extra cell) or ``"renormalise"``.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).

    Citation: Ko, Kim, Chen, Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
    Models", arXiv:2402.03898 (both divergences).
    """

    citation = (
        "DistiLLM: Towards Streamlined Distillation for Large Language Models",
        "arXiv:2402.03898",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}
    reverse = False

    def __init__(
        self,
        alpha: float = 0.1,
        temperature: float = 1.0,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__(temperature, tail, ignore_index, reduction, vocab_align)
        self.alpha = P.mixture("alpha", alpha)

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return partial(skew_reverse_kl if self.reverse else skew_forward_kl, alpha=self.alpha)

    def rule(self) -> Rule:
        if self.reverse:  # m = alpha q + (1 - alpha) p: teacher weight 1 - alpha, KL(q || m)
            return mixture_rule(1.0 - self.alpha, 0.0, 1.0, self.temperature)
        return mixture_rule(self.alpha, 1.0, 0.0, self.temperature)  # KL(p || m)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}"


class LinearDivergenceLoss(Loss):
    """Base class of the fused linear distillation losses (``linear-kd``, ``linear-jsd``).

    Subclasses list every parameter in their ``__init__`` and override :meth:`spec`, which says
    what the chunked pass computes.

    Args:
        temperature: softmax temperature T of teacher and student (> 0).
        softcap: cap ``c`` of both sides' logits, ``c * tanh(z / c)`` (None: no cap).
        chunk_size: tokens per block of the chunked pass (None: 2^23 logits per block, 256
            tokens at V = 32768, 65 at V = 128256).
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).
        shift: next-token alignment as in ``linear-cross-entropy``: position t counts when
            ``targets[..., t+1]`` is not ignored, the last position never.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
        shift: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = P.temperature(temperature)
        self.softcap = P.softcap(softcap)
        self.chunk_size = P.chunk_size(chunk_size)
        self.ignore_index = P.ignore_index(ignore_index)
        self.reduction = P.reduction(reduction)
        self.vocab_align = P.vocab_align(vocab_align)
        self.shift = P.flag("shift", shift)

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
            shift=self.shift,
        )


def divergence_loss(
    per_row: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    rule: Rule | None,
    logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_topk_ids: torch.Tensor | None,
    teacher_topk_logprobs: torch.Tensor | None,
    targets: torch.Tensor | None,
    num_items: int | float | torch.Tensor | None,
    *,
    temperature: float,
    tail: str,
    vocab_align: str,
    ignore_index: int,
    reduction: str,
    scale: float = 1.0,
) -> torch.Tensor:
    """The common body of the per-token divergence losses (kd, reverse-kl, jsd, skew-*, tvd).

    A full teacher goes through the fused rows (:mod:`._fused`) in eager mode; a top-k teacher,
    and any teacher under ``torch.compile`` (which fuses the general formulas itself, without
    the per-row data-dependent choice), through the general masked formulas.
    """
    s, lead = as_rows("logits", logits)
    valid = target_mask(targets, lead, ignore_index, s.shape[-1], s.device)
    check_num_items(num_items)
    fused = rule is not None and teacher_logits is not None and not torch.compiler.is_compiling()
    if fused:
        assert rule is not None and teacher_logits is not None
        if teacher_topk_ids is not None or teacher_topk_logprobs is not None:
            raise BadInputError(
                "give either teacher_logits or teacher_topk_ids + teacher_topk_logprobs, not both"
            )
        t, t_lead = as_rows("teacher_logits", teacher_logits)
        check_lead("teacher_logits", t_lead, lead, "logits")
        s, t = align_vocab(s, t, vocab_align)
        values = divergence_rows(s, t, rule, lambda lp, lq, _y: per_row(lp, lq))
        return reduce_rows(values, valid, reduction, lead, num_items)
    check_student_finite("logits", s)
    s = s.to(compute_dtype(s))
    teacher = read_teacher(
        s,
        teacher_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        lead=lead,
        vocab_align=vocab_align,
    )
    pair = soft_pair(teacher, temperature=temperature, tail=tail)
    values = per_row(pair.teacher, pair.student)
    if scale != 1.0:
        values = values * scale
    return reduce_rows(values, valid, reduction, lead, num_items)
