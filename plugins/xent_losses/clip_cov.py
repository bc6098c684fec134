"""Clip-Cov: the PPO-clipped policy loss with a few high-covariance tokens cut from the update."""

from __future__ import annotations

import torch

from xent_core import validate
from xent_core.base_loss import Loss

from ._policy import (
    AGG_MODES,
    aggregate,
    centred_covariance,
    check_generator,
    policy_example_inputs,
    policy_inputs,
    selection_size,
)


def clip_cov_selection(
    cov: torch.Tensor,
    eligible: torch.Tensor,
    take: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Pick ``min(take, #eligible)`` eligible tokens uniformly at random; a (B, T) bool mask."""
    out = torch.zeros_like(eligible)
    idx = torch.nonzero(eligible.reshape(-1)).squeeze(1)
    take = min(take, int(idx.numel()))
    if take == 0:
        return out
    perm = torch.randperm(idx.numel(), generator=generator, device="cpu")[:take].to(idx.device)
    out.reshape(-1)[idx[perm]] = True
    return out


class ClipCovLoss(Loss):
    """Clip-Cov: PPO policy loss that zeroes the loss of random tokens with Cov(log pi, A) in (lb, ub).

    With ``ratio = exp(logp - old_logp)``, ``pg1 = -A ratio`` and
    ``pg2 = -A clip(ratio, 1 - eps_low, 1 + eps_high)``, the per-token loss is
    ``max(pg1, pg2) * corr``. ``Cov_i = (A_i - mean A)(logp_i - mean logp)`` over the valid tokens
    (logp detached). Among valid tokens **not already clipped by PPO** (``pg2 > pg1``) with
    ``lb < Cov_i < ub`` (strict), ``max(1, int(r * N_valid))`` are picked uniformly at random
    (fewer if fewer qualify) and get ``corr = 0``: no loss, no gradient. High-covariance tokens
    drive entropy collapse; cutting a few keeps the policy's entropy up.

    Inputs: ``logprobs`` (B, T) with grad, ``old_logprobs`` (B, T), ``advantages`` (B, T) or (B,),
    optional ``mask`` (B, T) of response tokens. The selection is per call (per micro-batch).

    Args:
        clip_cov_ratio: fraction r of valid tokens to cut (2e-4, the reference default).
        clip_cov_lb: lower covariance bound lb (1.0).
        clip_cov_ub: upper covariance bound ub (5.0).
        clip_ratio_low: PPO eps_low (0.2).
        clip_ratio_high: PPO eps_high (0.2).
        loss_agg_mode: ``token-mean``, ``seq-mean-token-sum`` or ``seq-mean-token-mean``.
        reduction: ``mean`` (apply loss_agg_mode), ``sum`` (over valid tokens), ``none`` ((B, T)).
        generator: ``torch.Generator`` for the random pick (None: the global RNG).

    Citation: Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
    Models" (arXiv:2505.22617).
    """

    citation = (
        "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
        "arXiv:2505.22617",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    example_inputs = staticmethod(policy_example_inputs)

    def __init__(
        self,
        clip_cov_ratio: float = 2e-4,
        clip_cov_lb: float = 1.0,
        clip_cov_ub: float = 5.0,
        clip_ratio_low: float = 0.2,
        clip_ratio_high: float = 0.2,
        loss_agg_mode: str = "token-mean",
        reduction: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.clip_cov_ratio = validate.unit_interval("clip_cov_ratio", clip_cov_ratio)
        self.clip_cov_lb = validate.number("clip_cov_lb", clip_cov_lb)
        self.clip_cov_ub = validate.number("clip_cov_ub", clip_cov_ub, low=self.clip_cov_lb)
        self.clip_ratio_low = validate.unit_interval("clip_ratio_low", clip_ratio_low)
        self.clip_ratio_high = validate.nonnegative("clip_ratio_high", clip_ratio_high)
        self.loss_agg_mode = validate.choice("loss_agg_mode", loss_agg_mode, AGG_MODES)
        self.reduction = validate.reduction(reduction)
        self.generator = check_generator(generator)
        self.last_selected: torch.Tensor | None = None

    def forward(
        self,
        logprobs: torch.Tensor,
        old_logprobs: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lp, old, adv, valid = policy_inputs(logprobs, old_logprobs, advantages, mask, "clip-cov")
        ratio = torch.exp(lp - old)
        pg1 = -adv * ratio
        pg2 = -adv * ratio.clamp(1.0 - self.clip_ratio_low, 1.0 + self.clip_ratio_high)
        clipped = (pg2 > pg1).detach() & valid
        cov = centred_covariance(lp, adv, valid)
        eligible = valid & ~clipped & (cov > self.clip_cov_lb) & (cov < self.clip_cov_ub)
        take = selection_size(self.clip_cov_ratio, valid) if self.clip_cov_ratio > 0 else 0
        picked = clip_cov_selection(cov, eligible, take, self.generator)
        self.last_selected = picked
        loss_mat = torch.where(picked, torch.zeros_like(pg1), torch.maximum(pg1, pg2))
        return aggregate(loss_mat, valid, self.loss_agg_mode, self.reduction)

    def extra_repr(self) -> str:
        return (
            f"clip_cov_ratio={self.clip_cov_ratio}, bounds=({self.clip_cov_lb}, "
            f"{self.clip_cov_ub}), loss_agg_mode={self.loss_agg_mode!r}"
        )
