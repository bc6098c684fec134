"""Shared inputs and aggregation of the covariance-targeted PPO losses (``clip-cov``, ``kl-cov``).

Semantics follow the paper's merged reference implementation (verl ``core_algos``): the token
covariance ``Cov_i = (A_i - mean A)(log pi_i - mean log pi)`` is centred over the valid tokens
(the mean of log pi detached; A is data), selection counts are ``max(1, int(ratio * N_valid))``
with ``N_valid`` the valid tokens of the batch passed in (per micro-batch, as in verl), and the
per-token loss matrix is aggregated by ``loss_agg_mode``.
"""

from __future__ import annotations

from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, input_checks_enabled

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")


def policy_inputs(
    logprobs: Any, old_logprobs: Any, advantages: Any, mask: Any, who: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logp, old, adv, valid)``, all (B, T); ``advantages`` may be (B,) (one per sequence)."""
    if not isinstance(logprobs, torch.Tensor) or not logprobs.is_floating_point():
        raise BadInputError(f"{who}: logprobs must be a floating-point tensor (B, T)")
    if logprobs.dim() != 2:
        raise BadInputError(f"{who}: logprobs must have shape (B, T), got {tuple(logprobs.shape)}")
    dtype = torch.float64 if logprobs.dtype == torch.float64 else torch.float32
    shape = tuple(logprobs.shape)
    if (
        not isinstance(old_logprobs, torch.Tensor)
        or not old_logprobs.is_floating_point()
        or tuple(old_logprobs.shape) != shape
    ):
        raise BadInputError(f"{who}: old_logprobs must be a floating-point tensor of shape {shape}")
    if not isinstance(advantages, torch.Tensor) or not advantages.is_floating_point():
        raise BadInputError(f"{who}: advantages must be a floating-point tensor (B, T) or (B,)")
    adv = advantages.detach().to(device=logprobs.device, dtype=dtype)
    if tuple(adv.shape) == shape[:1]:
        adv = adv[:, None].expand(shape)
    elif tuple(adv.shape) != shape:
        raise BadInputError(
            f"{who}: advantages must have shape {shape} or ({shape[0]},), got {tuple(adv.shape)}"
        )
    if mask is None:
        valid = torch.ones(shape, dtype=torch.bool, device=logprobs.device)
    else:
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
            raise BadInputError(f"{who}: mask must be a tensor of shape {shape}")
        valid = mask.to(logprobs.device).bool()
    lp = logprobs.to(dtype)
    old = old_logprobs.detach().to(device=lp.device, dtype=dtype)
    zero = torch.zeros_like(old)
    checked = (("logprobs", lp.detach()), ("old_logprobs", old), ("advantages", adv))
    for name, t in checked if input_checks_enabled() else ():
        if not bool(torch.isfinite(torch.where(valid, t, zero)).all()):
            raise BadInputError(f"{who}: {name} has NaN or inf at valid tokens")
    return lp, old, adv, valid


def centred_covariance(logp: torch.Tensor, adv: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, T) ``(A - mean A)(log pi - mean log pi)`` over valid tokens (detached; 0 elsewhere)."""
    n = valid.sum().clamp(min=1)
    zero = torch.zeros_like(adv)
    lp = logp.detach()
    a_mean = torch.where(valid, adv, zero).sum() / n
    lp_mean = torch.where(valid, lp, zero).sum() / n
    return torch.where(valid, (adv - a_mean) * (lp - lp_mean), zero)


def selection_size(ratio: float, valid: torch.Tensor) -> int:
    """``max(1, int(ratio * N_valid))`` (0 without valid tokens)."""
    n = int(valid.sum())
    return 0 if n == 0 else max(1, int(ratio * n))


def aggregate(
    loss_mat: torch.Tensor, valid: torch.Tensor, mode: str, reduction: str
) -> torch.Tensor:
    """Reduce the (B, T) per-token loss: ``none`` (masked matrix), ``sum``, or ``loss_agg_mode``.

    ``token-mean`` divides by the valid tokens; ``seq-mean-token-sum`` averages the per-sequence
    sums over all B sequences (as verl); ``seq-mean-token-mean`` averages the per-sequence means
    over sequences that have a valid token (verl gives NaN for an empty one). No valid token at
    all gives 0 with a zero gradient.
    """
    masked = torch.where(valid, loss_mat, torch.zeros_like(loss_mat))
    if reduction == "none":
        return masked
    if reduction == "sum":
        return masked.sum()
    if mode == "token-mean":
        return masked.sum() / valid.sum().clamp(min=1).to(masked.dtype)
    per_seq = masked.sum(dim=1)
    if mode == "seq-mean-token-sum":
        return per_seq.sum() / max(1, masked.shape[0])
    counts = valid.sum(dim=1)
    has = counts > 0
    means = per_seq / counts.clamp(min=1).to(masked.dtype)
    return torch.where(has, means, torch.zeros_like(means)).sum() / has.sum().clamp(min=1)


def check_generator(generator: Any) -> torch.Generator | None:
    """``None`` or a ``torch.Generator`` (for the random pick)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise BadParameterError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    return generator


def policy_example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """(3, 5) log-probs, old log-probs, advantages and a response mask, for the sweep."""
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    return {
        "logprobs": -torch.rand(3, 5, generator=generator) * 3,
        "old_logprobs": -torch.rand(3, 5, generator=generator) * 3,
        "advantages": torch.randn(3, 5, generator=generator),
        "mask": mask,
    }
