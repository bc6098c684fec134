"""What every linear cross-entropy kernel agrees on: per-token loss, token weights, reductions.

With logits ``z`` (see :mod:`xent_cce.chunked`), ``lse_i = logsumexp_j z_ij``, label smoothing
``eps`` and z-loss weight ``lambda``, the loss of a non-ignored token is

    l_i = lse_i - (1 - eps) z_i,y_i - (eps / V) sum_j z_ij + lambda lse_i^2

(PyTorch's label smoothing; PaLM's z-loss). ``mean`` averages over non-ignored tokens, ``sum``
adds them, ``none`` returns ``l`` per token with 0 at ignored positions; with every token
ignored the loss is 0.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")
#: ``filter_eps="auto"`` = machine epsilon of the input dtype / 32 (2^-12 for bf16).
AUTO_FILTER_DIVISOR = 32


def resolve_filter_eps(value: float | str | None, dtype: torch.dtype) -> float | None:
    """``"auto"`` -> ``finfo(dtype).eps / 32``; ``None`` or 0 -> exact (no filtering)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"filter_eps must be 'auto', a float >= 0 or None, got {value!r}")
        return torch.finfo(dtype).eps / AUTO_FILTER_DIVISOR
    eps = float(value)
    return eps if eps > 0 else None


def token_losses(
    lse: torch.Tensor,
    target_logit: torch.Tensor,
    logit_sum: torch.Tensor | None,
    valid: torch.Tensor,
    *,
    vocab: int,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> torch.Tensor:
    """Per-token loss ``l_i`` (N,), 0 at ignored tokens."""
    loss = lse - (1.0 - label_smoothing) * target_logit
    if label_smoothing:
        if logit_sum is None:
            raise ValueError("label smoothing needs the per-token sum of logits")
        loss = loss - (label_smoothing / vocab) * logit_sum
    if z_loss:
        loss = loss + z_loss * lse.square()
    return torch.where(valid, loss, torch.zeros_like(loss))


def token_weights(valid: torch.Tensor, reduction: str, dtype: torch.dtype) -> torch.Tensor:
    """d(reduced loss) / d(l_i): ``1/n_valid`` (mean) or 1 (sum) at valid tokens, else 0."""
    w = valid.to(dtype)
    if reduction == "mean":
        w = w / valid.sum().clamp_min(1).to(dtype)
    return w


def reduce_tokens(per_token: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction``; ``per_token`` is already 0 at ignored tokens."""
    if reduction == "none":
        return per_token
    total = per_token.sum()
    if reduction == "sum":
        return total
    return total / valid.sum().clamp_min(1).to(per_token.dtype)


def z_loss_term(
    lse: torch.Tensor, valid: torch.Tensor, z_loss: float, reduction: str
) -> torch.Tensor:
    """The z-loss part alone, ``lambda * lse^2`` reduced like the loss (detached)."""
    per_token = torch.where(valid, z_loss * lse.detach().float().square(), torch.zeros_like(lse))
    return reduce_tokens(per_token.float(), valid, reduction)
