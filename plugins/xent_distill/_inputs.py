"""Input checks and flattening shared by the distillation losses.

Rows ``(N, C)`` from ``(..., C)``, matching leading shapes and vocabularies, the target
contract of ``cross-entropy`` (class ids in ``[0, C)`` or ``ignore_index``; probability
targets mask nothing), finite teachers and ``num_items``. The data-dependent checks run
unless ``xent_core.input_checks(False)`` turned them off, and never while ``torch.compile``
traces.
"""

from __future__ import annotations

import math

import torch

from xent_core import BadInputError, input_checks_enabled


def checks_on() -> bool:
    """Whether the data-dependent input checks run (``xent_core.input_checks``); the core's
    switch also answers while ``torch.compile`` traces, so compiled losses check too."""
    return input_checks_enabled()


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


def check_student_finite(name: str, s: torch.Tensor) -> None:
    """NaN or +inf in the student's logits is an error (``-inf`` masks a class)."""
    if checks_on() and s.numel() and not bool(s.amax() < float("inf")):
        raise BadInputError(f"{name} contains NaN or +inf; logits must be finite (or -inf)")


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


def class_ids(
    targets: torch.Tensor, valid: torch.Tensor, num_classes: int, ignore_index: int
) -> torch.Tensor:
    """``(N,)`` int64 targets with ignored rows set to 0; checks the range of the others."""
    check_target_range(targets, valid, num_classes, ignore_index)
    y = targets.reshape(-1).to(device=valid.device, dtype=torch.int64)
    return torch.where(valid, y, torch.zeros_like(y))


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
