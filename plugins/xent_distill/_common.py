"""Shared helpers of the distillation losses: validation, masking, reductions, top-k teachers.

Teachers come in two forms:

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
from collections.abc import Callable
from typing import NamedTuple

import torch

from xent_core import BadInputError, BadParameterError, input_checks_enabled

from .functional import log1mexp

REDUCTIONS = ("mean", "sum", "none")
TAILS = ("bucket", "renormalise")
VOCAB_ALIGN = ("error", "truncate")
TAIL_LOG_FLOOR = -100.0


# ----------------------------------------------------------------------------- parameters
def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadParameterError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


def check_tail(tail: object) -> str:
    if tail == "renormalize":
        return "renormalise"
    return check_choice("tail", tail, TAILS)


def check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BadParameterError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise BadParameterError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise BadParameterError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise BadParameterError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_unit_interval(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BadParameterError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_softcap(value: object) -> float | None:
    if value is None:
        return None
    return check_positive("softcap", value)


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- inputs
def checks_on() -> bool:
    """Whether the data-dependent input checks run: on unless turned off, and off while
    ``torch.compile`` traces (a check reads a value on the host: a graph break)."""
    return not torch.compiler.is_compiling() and input_checks_enabled()


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """fp32 for half/bfloat16 (and fp32) inputs, float64 kept as is."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_rows(name: str, x: torch.Tensor, min_dim: int = 1) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Flatten ``(..., C)`` to ``(N, C)``; returns the rows and the leading shape."""
    if not isinstance(x, torch.Tensor):
        raise BadInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise BadInputError(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise BadInputError(f"{name} must be a floating-point tensor, got {x.dtype}")
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]), lead


def check_lead(name: str, lead: tuple[int, ...], expected: tuple[int, ...], ref: str) -> None:
    if lead != expected:
        raise BadInputError(
            f"{name} has leading shape {lead}, but {ref} has {expected}: they must match"
        )


def check_teacher_finite(name: str, t: torch.Tensor) -> None:
    """NaN or +inf in a teacher is an error (``-inf`` means probability zero and is allowed)."""
    if not checks_on():
        return
    if not bool((t < float("inf")).all()):
        raise BadInputError(f"{name} contains NaN or +inf; the teacher must be finite (or -inf)")
    if t.shape[-1] > 0 and not bool((t > float("-inf")).any(-1).all()):
        raise BadInputError(f"{name} has a row that is entirely -inf")


def align_vocab(
    logits: torch.Tensor, teacher: torch.Tensor, vocab_align: str, what: str = "teacher_logits"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make the last dims match: error (default) or truncate both to the common prefix."""
    cs, ct = logits.shape[-1], teacher.shape[-1]
    if cs == ct:
        return logits, teacher
    if vocab_align == "truncate":
        c = min(cs, ct)
        return logits[..., :c], teacher[..., :c]
    raise BadInputError(
        f"student has {cs} classes but {what} has {ct}; the vocabularies must match "
        "(or pass vocab_align='truncate' to keep the first min(C_student, C_teacher) classes, "
        "e.g. when one side pads its vocabulary)"
    )


def valid_rows(
    targets: torch.Tensor | None,
    n: int,
    lead: tuple[int, ...],
    ignore_index: int,
    device: torch.device,
    probabilities_ok: bool = False,
) -> torch.Tensor | None:
    """Boolean ``(N,)`` mask of rows to keep (``targets != ignore_index``), or None if no targets.

    With ``probabilities_ok`` (losses that use targets only to mask), probability targets
    ``(..., C)``, as ``cross-entropy`` takes them in the same stack, are accepted and mask nothing.
    """
    if targets is None:
        return None
    if not isinstance(targets, torch.Tensor):
        raise BadInputError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if probabilities_ok and targets.is_floating_point() and tuple(targets.shape[:-1]) == lead:
        return None
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        also = (
            f" (or probabilities of shape {(*lead, 'C')}, got shape {tuple(targets.shape)})"
            if probabilities_ok
            else ""
        )
        raise BadInputError(
            "targets must hold integer class ids (int64) for distillation losses, got "
            f"{targets.dtype}{also}"
        )
    if tuple(targets.shape) != lead:
        raise BadInputError(
            f"targets has shape {tuple(targets.shape)}, expected the logits' leading shape {lead}"
        )
    return targets.reshape(n).to(device) != ignore_index


def class_ids(
    targets: torch.Tensor, valid: torch.Tensor, num_classes: int, ignore_index: int
) -> torch.Tensor:
    """``(N,)`` int64 targets with ignored rows set to 0; checks the range of the others."""
    check_target_range(targets, valid, num_classes, ignore_index)
    y = targets.reshape(-1).to(device=valid.device, dtype=torch.int64)
    return torch.where(valid, y, torch.zeros_like(y))


def check_target_range(
    targets: torch.Tensor, valid: torch.Tensor, num_classes: int, ignore_index: int
) -> None:
    """The target contract of ``cross-entropy``: every id is in ``[0, C)`` or ``ignore_index``
    (a padding id such as -1 or C is an error, not a silently counted row)."""
    if not checks_on() or not targets.numel():
        return
    y = targets.reshape(-1).to(valid.device)
    bad = valid & ((y < 0) | (y >= num_classes))
    if bool(bad.any()):
        raise BadInputError(
            f"target {int(y[bad][0])} is outside [0, {num_classes}): class ids must lie in "
            f"[0, {num_classes}) or equal ignore_index={ignore_index}"
        )


def target_mask(
    targets: torch.Tensor | None,
    lead: tuple[int, ...],
    ignore_index: int,
    num_classes: int,
    device: torch.device,
    *,
    shift: bool = False,
) -> torch.Tensor | None:
    """``(N,)`` rows that count for a loss that uses ``targets`` only as a mask, or None (all).

    Class ids follow the target contract of ``cross-entropy`` (:func:`check_target_range`);
    probability targets ``(..., C)`` mask nothing. ``shift``: row ``t`` counts when
    ``targets[..., t + 1]`` does, the last position of each sequence never.
    """
    n = math.prod(lead)
    valid = valid_rows(targets, n, lead, ignore_index, device, probabilities_ok=True)
    if valid is not None:
        assert targets is not None
        check_target_range(targets, valid, num_classes, ignore_index)
    if not shift:
        return valid
    if not lead:
        raise BadInputError("shift=True needs a sequence dimension (hidden of shape (..., T, D))")
    rows = torch.ones(lead, dtype=torch.bool, device=device) if valid is None else valid
    rows = rows.reshape(lead)
    last = torch.zeros_like(rows[..., :1])
    return torch.cat([rows[..., 1:], last], dim=-1).reshape(n)


def check_num_items(num_items: object) -> None:
    if num_items is None:
        return
    if isinstance(num_items, torch.Tensor):
        if num_items.numel() != 1:
            raise BadInputError(f"num_items must be a scalar, got shape {tuple(num_items.shape)}")
        value = float(num_items.item())
    elif isinstance(num_items, (int, float)) and not isinstance(num_items, bool):
        value = float(num_items)
    else:
        raise BadInputError(f"num_items must be an int or a scalar tensor, got {num_items!r}")
    if not value >= 0:
        raise BadInputError(f"num_items must be >= 0, got {value}")


# ----------------------------------------------------------------------------- reductions
def denominator(
    valid: torch.Tensor | None,
    n: int,
    num_items: int | float | torch.Tensor | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """What ``mean`` divides by: ``num_items`` if given, else the number of kept rows (>= 1)."""
    if num_items is not None:
        d = torch.as_tensor(num_items, dtype=like.dtype, device=like.device)
    elif valid is not None:
        d = valid.sum().to(like.dtype)
    else:
        d = torch.tensor(float(n), dtype=like.dtype, device=like.device)
    return d.clamp(min=1.0)


def reduce_rows(
    per_row: torch.Tensor,
    valid: torch.Tensor | None,
    reduction: str,
    lead: tuple[int, ...],
    num_items: int | float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask ignored rows to 0, then ``none`` (leading shape), ``sum``, or ``mean``.

    ``mean`` divides the sum over kept rows by ``num_items`` when given (set it to the number of
    kept items of the whole accumulated batch, so that summing micro-batch losses gives the
    full-batch mean), otherwise by the number of kept rows; everything ignored gives 0.
    """
    if valid is not None:
        per_row = torch.where(valid, per_row, torch.zeros_like(per_row))
    if reduction == "none":
        return per_row.reshape(lead)
    total = per_row.sum()
    if reduction == "sum":
        return total
    return total / denominator(valid, per_row.shape[0], num_items, total)


# ----------------------------------------------------------------------------- teachers
class Pair(NamedTuple):
    """Student and teacher log-probabilities ``(N, M)`` on one support, and where ``targets`` sit.

    ``target_cell`` is the support index of each row's target class, ``-1`` if the support does
    not contain it (top-k teacher with ``tail="renormalise"``), or None without targets.
    """

    student: torch.Tensor
    teacher: torch.Tensor
    target_cell: torch.Tensor | None


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


def _target_cell(y: torch.Tensor | None, ids: torch.Tensor, bucket: bool) -> torch.Tensor | None:
    if y is None:
        return None
    hit = ids == y[:, None]
    found = hit.any(-1)
    pos = hit.to(torch.int64).argmax(-1)
    outside = torch.full_like(pos, ids.shape[-1] if bucket else -1)
    return torch.where(found, pos, outside)


def teacher_tail_logmass(logprobs: torch.Tensor) -> torch.Tensor:
    """``log(1 - sum_k p_k)`` per row, computed in float64 and floored at ``TAIL_LOG_FLOOR``."""
    lse = torch.logsumexp(logprobs.double(), -1).clamp(max=0.0)
    return log1mexp(lse).clamp(min=TAIL_LOG_FLOOR)


class Teacher(NamedTuple):
    """A validated teacher: the full logits, or top-k ids and log-probabilities (detached).

    ``student`` are the student rows, cut to the common vocabulary when ``vocab_align`` says so.
    """

    student: torch.Tensor
    logits: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    logprobs: torch.Tensor | None = None


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


class Labelled(NamedTuple):
    """Checked inputs of a loss that needs the true label: leading shape, valid rows, ids, teacher."""

    lead: tuple[int, ...]
    valid: torch.Tensor
    y: torch.Tensor
    teacher: Teacher


def read_labelled(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_topk_ids: torch.Tensor | None,
    teacher_topk_logprobs: torch.Tensor | None,
    num_items: int | float | torch.Tensor | None,
    *,
    ignore_index: int,
    vocab_align: str,
) -> Labelled:
    """The shared preamble of ``dkd`` and ``pld``: student rows in the compute dtype, the
    non-ignored rows, class ids (range-checked) and the validated teacher."""
    s, lead = as_rows("logits", logits)
    s = s.to(compute_dtype(s))
    valid = valid_rows(targets, s.shape[0], lead, ignore_index, s.device)
    assert valid is not None
    check_num_items(num_items)
    y = class_ids(targets, valid, s.shape[-1], ignore_index)
    teacher = read_teacher(
        s,
        teacher_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        lead=lead,
        vocab_align=vocab_align,
        y=y,
    )
    return Labelled(lead, valid, y, teacher)


# ----------------------------------------------------------------------------- driver
def divergence_loss(
    per_row: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
    """The common body of the per-token divergence losses (kd, reverse-kl, jsd, skew-*, tvd)."""
    s, lead = as_rows("logits", logits)
    s = s.to(compute_dtype(s))
    valid = valid_rows(targets, s.shape[0], lead, ignore_index, s.device, probabilities_ok=True)
    check_num_items(num_items)
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
