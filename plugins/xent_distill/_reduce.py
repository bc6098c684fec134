"""Reductions of per-row distillation values: ``mean`` (over kept rows or ``num_items``),
``sum`` and ``none``; everything ignored gives 0."""

from __future__ import annotations

import torch


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
