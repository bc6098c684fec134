"""Shared checks for the regression-as-classification losses (``hl-gauss``, ``two-hot``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from xent_core import BadInputError, BadParameterError, input_checks_enabled, validate

from ._common import Batch, check_number, per_item_input, prepare


def check_support(
    vmin: float, vmax: float, num_bins: int, min_bins: int
) -> tuple[float, float, int]:
    """Validate the support [vmin, vmax] and the number of bins."""
    lo = check_number("vmin", vmin)
    hi = check_number("vmax", vmax)
    if not hi > lo:
        raise BadParameterError(f"vmax must be greater than vmin, got vmin={vmin!r}, vmax={vmax!r}")
    return lo, hi, validate.integer("num_bins", num_bins, low=min_bins)


def prepare_values(
    logits: torch.Tensor, values: torch.Tensor | None, num_bins: int, who: str
) -> tuple[Batch, torch.Tensor]:
    """Validate logits (..., num_bins) and float ``values`` (...); NaN values are ignored items.

    Returns the batch (``valid`` = finite values) and the (N,) values with NaNs replaced by 0.
    """
    b = prepare(logits, None, who=who)
    if b.num_classes != num_bins:
        raise BadInputError(
            f"{who}: logits must have num_bins={num_bins} entries in the last dimension, "
            f"got shape {tuple(logits.shape)}"
        )
    v = per_item_input(values, "values", b, who, kind="float").to(b.logits.dtype)
    if input_checks_enabled() and bool(torch.isinf(v).any()):
        raise BadInputError(f"{who}: values must be finite (NaN marks an ignored item), got inf")
    b.valid = ~torch.isnan(v)
    return b, torch.where(b.valid, v, torch.zeros_like(v))


def softmax_mean(
    logits: torch.Tensor, points: Callable[..., torch.Tensor], vmin: float, vmax: float
) -> torch.Tensor:
    """``sum_j softmax(logits)_j * x_j`` over the last dimension, in float32 (float64 for float64).

    ``x = points(vmin, vmax, num_bins, dtype=, device=)`` are the support points (bin centres or
    atoms) of the (..., num_bins) logits.
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    x = points(vmin, vmax, logits.shape[-1], dtype=dtype, device=logits.device)
    return torch.softmax(logits.to(dtype), dim=-1) @ x
