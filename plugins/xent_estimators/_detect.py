"""Shared input handling of the pretraining-data detection scores (``dc-pdd``, ``min-k-prob``).

Documents are rows: a (T,) input is one document, a (B, T) input is B documents of T positions
with an optional (B, T) ``mask`` (True = a real token; padded positions may hold anything,
NaN included). Per-token values are float64 on the input's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError

from ._common import to_tensor

#: a target log-probability above this is not a log-probability (a little rounding above 0 is)
LOGP_TOLERANCE = 1e-6


def unpack_moments(x: Any) -> tuple[Any, Any, Any]:
    """``(logp_target, entropy, var_logp)`` if ``x`` is the ``logprob-moments`` kernel's output."""
    if all(hasattr(x, a) for a in ("logp_target", "entropy", "var_logp")):
        if x.logp_target is None:
            raise BadInputError(
                "the logprob-moments output has no target log-probs: call the kernel with targets"
            )
        return x.logp_target, x.entropy, x.var_logp
    return x, None, None


def as_rows(x: Any, name: str) -> tuple[torch.Tensor, bool]:
    """``x`` as a float64 (B, T) tensor (a (T,) input becomes one row) and whether it was 1-D."""
    t = to_tensor(x, name)
    if t.ndim == 1:
        return t[None, :], True
    if t.ndim != 2:
        raise BadInputError(
            f"{name} must have shape (T,) for one document or (B, T) for B documents; got "
            f"{tuple(t.shape)}"
        )
    return t, False


def row_mask(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A boolean (B, T) mask (all True when ``mask`` is None)."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    m = mask.detach() if isinstance(mask, torch.Tensor) else to_tensor(mask, "mask")
    if m.ndim == 1 and len(shape) == 2 and shape[0] == 1:
        m = m[None, :]
    if tuple(m.shape) != tuple(shape):
        raise BadInputError(f"mask has shape {tuple(m.shape)}, expected {tuple(shape)}")
    if m.dtype != torch.bool:
        if m.is_floating_point() and not bool(torch.isfinite(m).all()):
            raise BadInputError("mask must hold 0/1 or booleans")
        if not bool(((m == 0) | (m == 1)).all()):
            raise BadInputError("mask must hold 0/1 or booleans")
        m = m != 0
    return m.to(device)


def same_shape(t: torch.Tensor, name: str, like: torch.Tensor, like_name: str) -> torch.Tensor:
    """``t`` reshaped like ``like`` when a (T,) input meets a (1, T) one; else shapes must match."""
    if t.ndim == 1 and like.ndim == 2 and like.shape[0] == 1:
        t = t[None, :]
    if tuple(t.shape) != tuple(like.shape):
        raise BadInputError(
            f"{name} has shape {tuple(t.shape)} but {like_name} has {tuple(like.shape)}: one "
            "value per token"
        )
    return t.to(like.device)


def check_logprobs(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Finite log-probabilities <= 0 at the masked-in positions (others set to 0)."""
    kept = torch.where(mask, logp, torch.zeros_like(logp))
    lo, hi = (float(m) for m in torch.aminmax(kept)) if kept.numel() else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates through aminmax
        raise BadInputError(
            "token_logprobs contains NaN or inf: a target log-probability must be finite (a "
            "probability of exactly 0 cannot be scored)"
        )
    if hi > LOGP_TOLERANCE:  # the masked-out zeros never exceed the tolerance
        raise BadInputError(
            f"token_logprobs holds {hi:.4g} > 0: pass log-probabilities (<= 0), not "
            "probabilities or logits"
        )
    return kept.clamp_max(0.0)


def token_ids(y: Any, like: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Integer token ids shaped like ``like`` (int64; masked-out positions set to 0)."""
    if y is None:
        raise BadInputError("token_ids are required: one token id per log-probability")
    t = y.detach() if isinstance(y, torch.Tensor) else to_tensor(y, "token_ids")
    t = same_shape(t, "token_ids", like, "token_logprobs")
    if t.dtype == torch.bool:
        raise BadInputError("token_ids must be integers, not booleans")
    if t.is_floating_point():
        v = t[mask]
        if not bool((torch.isfinite(v) & (v == v.round())).all()):
            raise BadInputError("token_ids must be whole numbers")
    ids = torch.where(mask, t, torch.zeros_like(t)).to(torch.long)
    if ids.numel() and int(ids.min()) < 0:
        raise BadInputError("token_ids must be >= 0 (mask out padding instead)")
    return ids


def counts_per_row(mask: torch.Tensor) -> torch.Tensor:
    """Masked-in tokens per row; a row without any is an error (its score is undefined)."""
    n = mask.sum(dim=1)
    if mask.shape[1] == 0 or bool((n == 0).any()):
        empty = 0 if mask.shape[1] == 0 else int((n == 0).nonzero()[0])
        raise BadInputError(f"document {empty} has no tokens to score")
    return n


def k_smallest_mean(values: torch.Tensor, keep: torch.Tensor, k: float) -> torch.Tensor:
    """Per row, the mean of the ``max(1, int(k * n))`` smallest kept values (n = kept count).

    ``int(k * n)`` truncates the float product as the reference implementations do.
    """
    n = keep.sum(dim=1)
    count = (n.to(torch.float64) * k).trunc().to(torch.long).clamp_min(1)  # as int(k * n)
    width = min(int(count.max()), values.shape[1]) if count.numel() else 0
    # rows of one count sum all ``width`` smallest (any order); else the ascending prefix
    same = width == int(count.min()) if count.numel() else True
    if width and values.device.type == "cpu" and values.dtype == torch.float64:
        return _k_smallest_mean_numpy(values, keep, count, width, same)
    filled = torch.where(keep, values, torch.full_like(values, torch.inf))
    ordered = filled.topk(width, dim=1, largest=False, sorted=not same).values
    take = torch.arange(width, device=values.device)[None, :] < count[:, None]
    total = torch.where(take, ordered, torch.zeros_like(ordered)).sum(dim=1)
    return total / count.to(values.dtype)


def _k_smallest_mean_numpy(
    values: torch.Tensor, keep: torch.Tensor, count: torch.Tensor, width: int, same: bool
) -> torch.Tensor:
    """:func:`k_smallest_mean` on the CPU in float64: numpy's ``partition`` selects the
    ``width`` smallest of each row in linear time (torch's ``topk`` is several times slower
    here); rows of different counts sort only that prefix."""
    v = values.detach().numpy()
    mask = keep.numpy()
    filled = v if bool(mask.all()) else np.where(mask, v, np.inf)
    smallest = np.partition(filled, width - 1, axis=1)[:, :width]
    if not same:
        smallest = np.sort(smallest, axis=1)
        smallest[np.arange(width)[None, :] >= count.numpy()[:, None]] = 0.0
    return torch.from_numpy(smallest.sum(axis=1) / count.numpy())
