"""Reading the teacher: full ``teacher_logits`` or a top-k teacher, checked against the student.

A top-k teacher is ``teacher_topk_ids`` (..., k) int64 + ``teacher_topk_logprobs`` (..., k),
the k most likely classes and their log-probabilities at temperature 1, as serving stacks
return them. :mod:`._support` puts either form on a support shared with the student.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from xent_core import BadInputError

from ._inputs import (
    align_vocab,
    as_rows,
    check_lead,
    check_teacher_finite,
    checks_on,
)
from .functional import log1mexp

TAIL_LOG_FLOOR = -100.0


class Teacher(NamedTuple):
    """A validated teacher: the full logits, or top-k ids and log-probabilities (detached).

    ``student`` are the student rows, cut to the common vocabulary when ``vocab_align`` says so.
    """

    student: torch.Tensor
    logits: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    logprobs: torch.Tensor | None = None


def check_topk(
    ids: torch.Tensor | None, logprobs: torch.Tensor | None, n: int, lead: tuple[int, ...], c: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if ids is None or logprobs is None:
        raise BadInputError("a top-k teacher needs both teacher_topk_ids and teacher_topk_logprobs")
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
        raise BadInputError("teacher_topk_ids must be an integer (int64) tensor of class ids")
    if not isinstance(logprobs, torch.Tensor) or not logprobs.is_floating_point():
        raise BadInputError("teacher_topk_logprobs must be a floating-point tensor")
    if tuple(ids.shape) != tuple(logprobs.shape):
        raise BadInputError(
            f"teacher_topk_ids {tuple(ids.shape)} and teacher_topk_logprobs "
            f"{tuple(logprobs.shape)} must have the same shape"
        )
    if tuple(ids.shape[:-1]) != lead or ids.dim() < 1:
        raise BadInputError(
            f"teacher_topk_ids has leading shape {tuple(ids.shape[:-1])}, expected {lead} (..., k)"
        )
    k = ids.shape[-1]
    if not 1 <= k <= c:
        raise BadInputError(f"top-k teacher has k={k}; expected 1 <= k <= C={c}")
    ids = ids.reshape(n, k).to(torch.int64)
    logprobs = logprobs.reshape(n, k)
    if not checks_on():
        return ids, logprobs
    if n and bool(((ids < 0) | (ids >= c)).any()):
        raise BadInputError(f"teacher_topk_ids contain ids outside [0, {c})")
    if n and k > 1 and bool((ids.sort(-1).values.diff(dim=-1) == 0).any()):
        raise BadInputError("teacher_topk_ids repeat a class id within a row")
    check_teacher_finite("teacher_topk_logprobs", logprobs)
    if n and bool((logprobs > 1e-4).any()):
        raise BadInputError("teacher_topk_logprobs must be log-probabilities (<= 0)")
    # Rounding each log-probability to the input dtype (unit roundoff u) moves sum_k p_k by up to
    # u * sum_k p_k |log p_k| <= u * log k: allow that on top of the float32 tolerance.
    slack = 1e-3 + torch.finfo(logprobs.dtype).eps * math.log(k + 1)
    if n and bool((torch.logsumexp(logprobs.double(), -1) > slack).any()):
        raise BadInputError("teacher_topk_logprobs sum (as probabilities) to more than 1 in a row")
    return ids, logprobs


def read_teacher(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_topk_ids: torch.Tensor | None,
    teacher_topk_logprobs: torch.Tensor | None,
    *,
    lead: tuple[int, ...],
    vocab_align: str,
    y: torch.Tensor | None = None,
) -> Teacher:
    """Check whichever teacher form was given against the student's ``(N, C)`` rows."""
    n, c = logits.shape
    if teacher_logits is not None:
        if teacher_topk_ids is not None or teacher_topk_logprobs is not None:
            raise BadInputError(
                "give either teacher_logits or teacher_topk_ids + teacher_topk_logprobs, not both"
            )
        t, t_lead = as_rows("teacher_logits", teacher_logits)
        check_lead("teacher_logits", t_lead, lead, "logits")
        t = t.detach()
        check_teacher_finite("teacher_logits", t)
        logits, t = align_vocab(logits, t, vocab_align)
        if y is not None and logits.shape[-1] < c and bool((y >= logits.shape[-1]).any()):
            raise BadInputError(
                f"targets contain class ids >= {logits.shape[-1]}, the aligned vocabulary size"
            )
        return Teacher(logits, logits=t.to(logits.dtype))
    if teacher_topk_ids is None and teacher_topk_logprobs is None:
        raise BadInputError(
            "no teacher given: pass teacher_logits (..., C), or teacher_topk_ids and "
            "teacher_topk_logprobs (..., k)"
        )
    ids, lp = check_topk(teacher_topk_ids, teacher_topk_logprobs, n, lead, c)
    return Teacher(logits, ids=ids, logprobs=lp.detach().to(logits.dtype))


def teacher_tail_logmass(logprobs: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum_k p_k)`` per row, computed in float64 and floored at ``TAIL_LOG_FLOOR``."""
    lse = torch.logsumexp(logprobs.double(), -1).clamp(max=0.0)
    return log1mexp(lse).clamp(min=TAIL_LOG_FLOOR)
