"""Entropy dynamics of policy-gradient RL: Cov(log pi, advantage) per token, Clip-Cov and KL-Cov."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, validate

from ._common import check_finite, finish


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if value is None:
        raise BadInputError(f"{name} is required")
    try:
        return torch.as_tensor(value).detach()
    except (TypeError, ValueError, RuntimeError) as exc:  # ragged lists, strings, objects
        raise BadInputError(f"{name} must be a numeric array or tensor: {exc}") from exc


def _prepare(
    logprobs: Any, advantages: Any, mask: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lp = _as_tensor(logprobs, "logprobs")
    if not lp.is_floating_point():
        raise BadInputError("logprobs must be floating point (log pi of the sampled tokens)")
    dtype = torch.float64 if lp.dtype == torch.float64 else torch.float32
    lp = lp.to(dtype)
    if lp.ndim == 0:
        raise BadInputError("logprobs must have at least one token")
    adv = _as_tensor(advantages, "advantages").to(dtype=dtype, device=lp.device)
    if adv.shape != lp.shape:
        if adv.ndim >= 1 and adv.shape == lp.shape[: adv.ndim]:
            # one advantage per sequence (GRPO-style): broadcast over the token axes
            adv = adv.reshape(*adv.shape, *([1] * (lp.ndim - adv.ndim))).expand_as(lp)
        else:
            raise BadInputError(
                f"advantages must have the token shape {tuple(lp.shape)} or a leading part of it "
                f"(one per sequence); got {tuple(adv.shape)}"
            )
    if mask is None:
        valid = torch.ones_like(lp, dtype=torch.bool)
    else:
        valid = _as_tensor(mask, "mask").to(lp.device)
        if valid.shape != lp.shape:
            raise BadInputError(
                f"mask must have the token shape {tuple(lp.shape)}; got {tuple(valid.shape)}"
            )
        valid = valid.bool()
    kept = lp if mask is None else torch.where(valid, lp, torch.zeros_like(lp))
    check_finite(kept, "logprobs")
    check_finite(
        adv if mask is None else torch.where(valid, adv, torch.zeros_like(adv)), "advantages"
    )
    if kept.numel() and float(kept.max()) > 1e-6:  # masked-out tokens count as 0
        raise BadInputError("logprobs must be log-probabilities (<= 0); got positive values")
    return lp, adv, valid


def _valid(t: torch.Tensor, valid: torch.Tensor, masked: bool) -> torch.Tensor:
    """The valid entries of ``t``, flat in memory order (the whole tensor without a mask)."""
    return t[valid] if masked else t.reshape(-1)


def _covariance(
    lp: torch.Tensor, adv: torch.Tensor, valid: torch.Tensor, masked: bool
) -> torch.Tensor:
    if not masked:
        return (lp - lp.reshape(-1).mean()) * (adv - adv.reshape(-1).mean())
    if int(valid.sum()) == 0:
        return torch.zeros_like(lp)
    cov = (lp - lp[valid].mean()) * (adv - adv[valid].mean())
    return torch.where(valid, cov, torch.zeros_like(cov))


def token_covariance(logprobs: Any, advantages: Any, mask: Any = None) -> torch.Tensor:
    """Per-token centred product ``(log pi_i - mean log pi) (A_i - mean A)`` over the valid tokens.

    ``logprobs`` (...,) are log-probabilities of the sampled tokens under the current policy,
    ``advantages`` the same shape (or one per sequence, broadcast), ``mask`` selects the response
    tokens. Means are over the valid tokens; invalid tokens get 0. Its mean over the valid tokens
    is the batch covariance ``Cov(log pi, A)``.
    """
    lp, adv, valid = _prepare(logprobs, advantages, mask)
    return _covariance(lp, adv, valid, mask is not None)


def _selection_size(ratio: float, n_valid: int) -> int:
    if ratio <= 0 or n_valid == 0:
        return 0
    return min(n_valid, max(1, int(ratio * n_valid)))


def clip_cov_mask(
    logprobs: Any,
    advantages: Any,
    mask: Any = None,
    *,
    clip_ratio: float = 2e-4,
    cov_low: float = 1.0,
    cov_high: float = 5.0,
    generator: torch.Generator | None = None,
    old_logprobs: Any = None,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.2,
) -> torch.Tensor:
    """Clip-Cov token selection: which tokens to exclude from the policy-gradient update.

    Among the valid tokens whose covariance ``Cov_i`` (see :func:`token_covariance`) lies in
    ``(cov_low, cov_high)`` (strict, as the reference implementation), picks
    ``max(1, int(clip_ratio * N))`` uniformly at random (``N`` valid tokens; fewer if fewer are
    eligible). With ``old_logprobs``, tokens that PPO already clips (``-A clip(ratio) > -A ratio``
    with ``ratio = exp(logp - old)`` and the ``clip_ratio_low``/``clip_ratio_high`` range) are not
    eligible, as in the reference; without it no token is excluded for that reason. The loss
    then drops those tokens (the registered ``clip-cov`` loss does all of this)::

        sel = clip_cov_mask(logp, adv, resp_mask, old_logprobs=old_logp)
        pg_loss = -(adv * ratio)[resp_mask & ~sel].sum() / resp_mask.sum()

    Returns a bool tensor of the token shape. Defaults are the reference's (r = 2e-4, (1, 5),
    eps = 0.2); ``clip_ratio=0`` selects nothing (the reference requires r > 0).
    """
    if not 0.0 <= float(clip_ratio) <= 1.0:
        raise BadParameterError(f"clip_ratio must lie in [0, 1], got {clip_ratio!r}")
    if float(cov_low) > float(cov_high):
        raise BadParameterError(f"cov_low ({cov_low}) must be <= cov_high ({cov_high})")
    _, _, valid = _prepare(logprobs, advantages, mask)
    cov = token_covariance(logprobs, advantages, mask)
    eligible = valid & (cov > cov_low) & (cov < cov_high)
    if old_logprobs is not None:
        low = validate.unit_interval("clip_ratio_low", clip_ratio_low)
        high = validate.nonnegative("clip_ratio_high", clip_ratio_high)
        lp, adv, _ = _prepare(logprobs, advantages, mask)
        old = torch.as_tensor(old_logprobs).detach().to(device=lp.device, dtype=lp.dtype)
        if old.shape != lp.shape:
            raise BadInputError(f"old_logprobs must have shape {tuple(lp.shape)}")
        ratio = torch.exp(lp - old)
        clipped = -adv * ratio.clamp(1.0 - low, 1.0 + high) > -adv * ratio
        eligible &= ~clipped
    out = torch.zeros_like(valid)
    take = min(_selection_size(float(clip_ratio), int(valid.sum())), int(eligible.sum()))
    if take == 0:
        return out
    idx = torch.nonzero(eligible.reshape(-1)).squeeze(1)
    perm = torch.randperm(idx.numel(), generator=generator, device="cpu")[:take].to(idx.device)
    flat = out.reshape(-1)
    flat[idx[perm]] = True
    return flat.reshape(valid.shape)


def kl_cov_mask(
    logprobs: Any, advantages: Any, mask: Any = None, *, k_ratio: float = 2e-4
) -> torch.Tensor:
    """KL-Cov token selection: the top ``max(1, int(k_ratio * N))`` valid tokens by covariance.

    The loop adds a KL penalty ``beta |log pi - log pi_old|`` on those tokens only (the
    registered ``kl-cov`` loss does this)::

        sel = kl_cov_mask(logp, adv, resp_mask)
        loss_tok = -adv * ratio + beta * sel * (logp - logp_old).abs()

    Returns a bool tensor of the token shape. Default ``k_ratio`` is the reference
    implementation's 2e-4 (the paper used 2e-3 for its 7B model and 2e-4 for 32B).
    """
    if not 0.0 <= float(k_ratio) <= 1.0:
        raise BadParameterError(f"k_ratio must lie in [0, 1], got {k_ratio!r}")
    _, _, valid = _prepare(logprobs, advantages, mask)
    cov = token_covariance(logprobs, advantages, mask)
    out = torch.zeros_like(valid)
    take = _selection_size(float(k_ratio), int(valid.sum()))
    if take == 0:
        return out
    ranked = torch.where(valid, cov, torch.full_like(cov, -math.inf)).reshape(-1)
    top = torch.topk(ranked, take).indices
    flat = out.reshape(-1)
    flat[top] = True
    return flat.reshape(valid.shape)


class PolicyEntropyCovariance:
    """Policy entropy covariance: batch Cov(log pi, advantage), the driver of entropy change in RL.

    For a softmax policy trained by (natural) policy gradient, the entropy change per step is
    ``H(pi_{k+1}) - H(pi_k) ~ -eta Cov(log pi(a|s), A(s, a))``: confident tokens with positive
    advantage lower the entropy. Over the ``N`` valid sampled tokens of a batch,

        Cov_i = (log pi_i - mean_j log pi_j) (A_i - mean_j A_j),    Cov = (1/N) sum_i Cov_i.

    Call ``est(logprobs, advantages, mask=None)``: ``logprobs`` (...,) log-probabilities of the
    sampled tokens, ``advantages`` of the same shape or one per sequence (broadcast over tokens),
    ``mask`` the response-token mask. Returns the batch mean ``Cov`` (units of log-prob times
    advantage); ``details["per_token"]`` holds ``Cov_i`` (0 for masked tokens). The token
    selections of Clip-Cov and KL-Cov are the functions :func:`clip_cov_mask` and
    :func:`kl_cov_mask` of this module.

    Caveats: a sample estimate over the batch's tokens (the theory's covariance is over the
    policy's action distribution per state); a persistently positive value predicts entropy
    collapse.

    Citation: Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
    Models", arXiv:2505.22617.
    """

    citation = (
        "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
        "arXiv:2505.22617",
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(self) -> None:
        self.units = "log-prob x advantage"

    def __call__(self, x: Any, y: Any = None, *, mask: Any = None, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("policy-entropy-covariance needs logprobs (x) and advantages (y)")
        lp, adv, valid = _prepare(x, y, mask)
        masked = mask is not None
        n = int(valid.sum()) if masked else lp.numel()
        if n == 0:
            raise BadInputError("no valid tokens (the mask is all False)")
        cov = _covariance(lp, adv, valid, masked)
        value = float(cov.sum(dtype=torch.float64) / n)
        if not details:
            return value
        info = {
            "per_token": cov,
            "tokens": n,
            "logprob_mean": float(_valid(lp, valid, masked).mean()),
            "advantage_mean": float(_valid(adv, valid, masked).mean()),
            "positive_fraction": float((_valid(cov, valid, masked) > 0).double().mean()),
        }
        return finish(value, info, details)
