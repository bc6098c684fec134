"""The support on which student and teacher are compared, for full and top-k teachers.

Teachers come in two forms (:mod:`._teacher` reads them):

- ``teacher_logits`` (..., C): the full distribution ``p = softmax(t / T)``.
- ``teacher_topk_ids`` (..., k) int64 + ``teacher_topk_logprobs`` (..., k): the k most likely
  classes and their log-probabilities at temperature 1, as serving stacks return them.

A top-k teacher is compared with the student on a common per-row support chosen by ``tail``:

- ``"bucket"`` (default): the k classes plus one bucket holding the rest of the mass, for the
  teacher ``1 - sum_k p_k`` (floored at ``exp(-100)`` when rounding makes it vanish) and for the
  student the exact mass of its other ``C - k`` classes. At ``T != 1`` the teacher's bucket is
  tempered as if it were a single class, which is exact only at ``T = 1``: the tail's own logits
  are unknown.
- ``"renormalise"``: both distributions restricted to the k classes and renormalised there; the
  mass outside is ignored on both sides.

Either way every divergence is computed between two proper distributions on the same support,
and ``k = C`` gives exactly the full-teacher value. Losses that need one class axis shared by all
rows (``dist``) expand the top-k teacher to ``(N, C)`` instead: ``"renormalise"`` puts zero mass
outside the k classes, ``"bucket"`` spreads the tail mass uniformly over them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._teacher import Teacher, teacher_tail_logmass


class Pair(NamedTuple):
    """Student and teacher log-probabilities ``(N, M)`` on one support, and where ``targets`` sit.

    ``target_cell`` is the support index of each row's target class, ``-1`` if the support does
    not contain it (top-k teacher with ``tail="renormalise"``), or None without targets.
    """

    student: torch.Tensor
    teacher: torch.Tensor
    target_cell: torch.Tensor | None


def _target_cell(y: torch.Tensor | None, ids: torch.Tensor, bucket: bool) -> torch.Tensor | None:
    if y is None:
        return None
    hit = ids == y[:, None]
    found = hit.any(-1)
    pos = hit.to(torch.int64).argmax(-1)
    outside = torch.full_like(pos, ids.shape[-1] if bucket else -1)
    return torch.where(found, pos, outside)


def soft_pair(
    teacher: Teacher, *, temperature: float, tail: str, y: torch.Tensor | None = None
) -> Pair:
    """Student and teacher log-probabilities at ``temperature`` on a common support.

    Full teacher: both softmaxes over the C classes. Top-k teacher: the k classes (+ a tail
    bucket), as the module docstring describes. ``y`` are ``(N,)`` class ids (ignored rows
    already replaced by a valid id) when the loss needs the target's cell.
    """
    s = teacher.student
    lq_full = torch.log_softmax(s / temperature if temperature != 1.0 else s, -1)
    if teacher.logits is not None:
        return Pair(lq_full, torch.log_softmax(teacher.logits / temperature, -1), y)
    ids, lp_k = teacher.ids, teacher.logprobs
    assert ids is not None and lp_k is not None
    k, c = ids.shape[-1], s.shape[-1]
    lq_k = lq_full.gather(-1, ids)
    if tail == "renormalise" or k == c:
        lq = lq_k - torch.logsumexp(lq_k, -1, keepdim=True)
        lp = torch.log_softmax(lp_k / temperature, -1)
        return Pair(lq, lp, _target_cell(y, ids, bucket=False))
    q_tail = torch.logsumexp(lq_full.scatter(-1, ids, float("-inf")), -1, keepdim=True)
    lq = torch.cat([lq_k, q_tail], -1)
    p_tail = teacher_tail_logmass(lp_k).to(lp_k.dtype)[:, None]
    lp = torch.log_softmax(torch.cat([lp_k, p_tail], -1) / temperature, -1)
    return Pair(lq, lp, _target_cell(y, ids, bucket=True))


def expand_topk_teacher(
    ids: torch.Tensor,
    logprobs: torch.Tensor,
    num_classes: int,
    *,
    temperature: float,
    tail: str,
) -> torch.Tensor:
    """A full ``(N, C)`` teacher log-probability tensor from a top-k teacher.

    ``"renormalise"``: the tempered top-k distribution, ``-inf`` elsewhere. ``"bucket"``: the
    tempered k classes plus a tail bucket (as in :func:`soft_pair`), the bucket's mass spread
    uniformly over the ``C - k`` other classes.
    """
    n, k = ids.shape
    out = torch.full((n, num_classes), float("-inf"), dtype=logprobs.dtype, device=logprobs.device)
    if tail == "renormalise" or k == num_classes:
        return out.scatter(-1, ids, torch.log_softmax(logprobs / temperature, -1))
    p_tail = teacher_tail_logmass(logprobs).to(logprobs.dtype)[:, None]
    cells = torch.log_softmax(torch.cat([logprobs, p_tail], -1) / temperature, -1)
    spread = cells[:, k:] - math.log(num_classes - k)
    out = spread.expand(n, num_classes).clone()
    return out.scatter(-1, ids, cells[:, :k])


def teacher_logprobs_full(teacher: Teacher, *, temperature: float, tail: str) -> torch.Tensor:
    """Class-aligned ``(N, C)`` teacher log-probabilities at ``temperature`` (top-k expanded)."""
    if teacher.logits is not None:
        return torch.log_softmax(teacher.logits / temperature, -1)
    assert teacher.ids is not None and teacher.logprobs is not None
    return expand_topk_teacher(
        teacher.ids,
        teacher.logprobs,
        teacher.student.shape[-1],
        temperature=temperature,
        tail=tail,
    )
