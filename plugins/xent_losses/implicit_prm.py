"""Implicit PRM: outcome-label cross-entropy on beta times the summed log-ratio to a reference."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

_WHO = "implicit-prm"


def token_inputs(
    logprobs: Any, ref_logprobs: Any, mask: Any, who: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check (B, T) ``logprobs``/``ref_logprobs`` and an optional (B, T) ``mask``; flatten nothing."""
    for name, t in (("logprobs", logprobs), ("ref_logprobs", ref_logprobs)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise BadInputError(f"{who}: {name} must be a floating-point tensor (B, T)")
    if logprobs.dim() != 2 or ref_logprobs.shape != logprobs.shape:
        raise BadInputError(
            f"{who}: logprobs and ref_logprobs must both have shape (B, T), got "
            f"{tuple(logprobs.shape)} and {tuple(ref_logprobs.shape)}"
        )
    if mask is None:
        valid = torch.ones_like(logprobs, dtype=torch.bool)
    else:
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(logprobs.shape):
            raise BadInputError(f"{who}: mask must be a tensor of shape {tuple(logprobs.shape)}")
        valid = mask.to(device=logprobs.device).bool()
    dtype = torch.float64 if logprobs.dtype == torch.float64 else torch.float32
    lp, ref = logprobs.to(dtype), ref_logprobs.detach().to(dtype)
    zero = torch.zeros_like(lp)
    for name, t in (("logprobs", lp), ("ref_logprobs", ref)) if input_checks_enabled() else ():
        if not bool(torch.isfinite(torch.where(valid, t.detach(), zero)).all()):
            raise BadInputError(f"{who}: {name} has NaN or inf at unmasked tokens")
    return lp, ref, valid


def implicit_process_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    beta: float = 0.05,
    step_ends: torch.Tensor | None = None,
    mode: str = "single",
    aggregate: str = "min",
) -> ProcessRewards:
    """Per-token implicit rewards ``q_t`` and, with ``step_ends``, per-step rewards and a score.

    ``q_t = beta * sum_{i <= t} (log pi - log pi_ref)(y_i)`` over unmasked tokens. ``step_ends``
    (B, S) holds the index of each step's last token (-1 pads). In ``single`` mode a step's reward
    is ``q`` at its end minus ``q`` at the previous step's end (the first step: ``q`` at its
    end); ``accumulative`` keeps ``q`` at the step's end. The response score aggregates the
    valid steps by ``min`` (the evaluation default) or ``sum``. Everything is detached.

    Args:
        logprobs: (B, T) log-probs of the response tokens under the trained model.
        ref_logprobs: (B, T) log-probs under the frozen reference.
        mask: (B, T) response-token mask (None: every token).
        beta: the implicit reward scale (0.05 as in the official training script).
        step_ends: (B, S) last-token index of every step, -1 for padding (None: no steps).
        mode: ``single`` or ``accumulative``.
        aggregate: ``min`` or ``sum``.
    """
    beta = validate.positive("beta", beta)
    mode = validate.choice("mode", mode, ("single", "accumulative"))
    aggregate = validate.choice("aggregate", aggregate, ("min", "sum"))
    lp, ref, valid = token_inputs(logprobs, ref_logprobs, mask, "implicit_process_rewards")
    diff = torch.where(valid, lp.detach() - ref, torch.zeros_like(lp))
    q = beta * diff.cumsum(dim=1)
    if step_ends is None:
        return ProcessRewards(q, None, None)
    if not isinstance(step_ends, torch.Tensor) or step_ends.dim() != 2:
        raise BadInputError("step_ends must be an integer tensor (B, S) of token indices")
    if step_ends.is_floating_point() or step_ends.shape[0] != q.shape[0]:
        raise BadInputError(f"step_ends must be integer with {q.shape[0]} rows (B, S)")
    ends = step_ends.to(q.device).long()
    used = ends >= 0
    if bool((ends >= q.shape[1]).any()):
        raise BadInputError(f"step_ends must be < T = {q.shape[1]} (or -1 for padding)")
    at_end = q.gather(1, ends.clamp(min=0))
    at_end = torch.where(used, at_end, torch.zeros_like(at_end))
    if mode == "single":
        prev = torch.cat([torch.zeros_like(at_end[:, :1]), at_end[:, :-1]], dim=1)
        steps = at_end - prev
    else:
        steps = at_end
    steps = torch.where(used, steps, torch.zeros_like(steps))
    if aggregate == "sum":
        score = steps.sum(dim=1)
    else:
        inf = torch.full_like(steps, float("inf"))
        score = torch.where(used, steps, inf).min(dim=1).values
        score = torch.where(used.any(dim=1), score, torch.zeros_like(score))
    return ProcessRewards(q, steps, score)


class ProcessRewards(NamedTuple):
    """What :func:`implicit_process_rewards` returns."""

    token: torch.Tensor
    """(B, T) cumulative implicit reward q_t."""
    steps: torch.Tensor | None
    """(B, S) per-step rewards (0 for padding), or None without ``step_ends``."""
    score: torch.Tensor | None
    """(B,) response score (min or sum over steps), or None without ``step_ends``."""


class ImplicitPRMLoss(Loss):
    """Implicit PRM: BCE-with-logits of r = beta * sum_t log(pi / pi_ref) against outcome labels.

    A process reward model trained from response-level labels only. With response tokens
    ``y_t`` (mask), the outcome reward is

        r = beta * sum_t [log pi(y_t | y_<t) - log pi_ref(y_t | y_<t)],
        l = -[l_y log sigmoid(r) + (1 - l_y) log(1 - sigmoid(r))],

    a **sum** over tokens (not a mean), computed with ``binary_cross_entropy_with_logits`` (the
    official code's sigmoid-then-BCELoss clamps log at -100 and saturates). The reference
    log-probs are detached (a frozen model). After training, the partial sums
    ``q_t = beta * sum_{i<=t} log(pi/pi_ref)`` are free per-token process rewards: see
    :func:`implicit_process_rewards` (per-step rewards, ``single``/``accumulative``,
    ``min``/``sum`` aggregation).

    Inputs: ``logprobs`` (B, T) with grad, ``ref_logprobs`` (B, T), ``labels`` (B,) in [0, 1]
    (soft labels allowed), optional ``mask`` (B, T) of response tokens.

    Args:
        beta: reward scale (0.05, the official training script's; its CLI default is 0.1 and its
            trainer default 0.01). Scoring at evaluation used 0.001: a different beta.
        reduction: ``mean`` (over sequences), ``sum`` or ``none`` ((B,)).

    Citation: Yuan et al., "Free Process Rewards without Process Labels" (arXiv:2412.01981).
    """

    citation = ("Free Process Rewards without Process Labels", "arXiv:2412.01981")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """(3, 5) log-probs and reference log-probs, (3,) 0/1 labels and a mask, for the sweep."""
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[2, :2] = False  # a prompt
        return {
            "logprobs": -torch.rand(3, 5, generator=generator) * 3,
            "ref_logprobs": -torch.rand(3, 5, generator=generator) * 3,
            "labels": torch.tensor([1, 0, 1]),
            "mask": mask,
        }

    def __init__(self, beta: float = 0.05, reduction: str = "mean") -> None:
        super().__init__()
        self.beta = validate.positive("beta", beta)
        self.reduction = validate.reduction(reduction)

    def forward(
        self,
        logprobs: torch.Tensor,
        ref_logprobs: torch.Tensor,
        labels: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lp, ref, valid = token_inputs(logprobs, ref_logprobs, mask, _WHO)
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (lp.shape[0],):
            raise BadInputError(f"{_WHO}: labels must be a tensor of shape ({lp.shape[0]},)")
        y = labels.to(device=lp.device, dtype=lp.dtype)
        if input_checks_enabled() and not bool(((y >= 0) & (y <= 1)).all()):
            raise BadInputError(f"{_WHO}: labels must lie in [0, 1] (1 = correct response)")
        reward = self.beta * torch.where(valid, lp - ref, torch.zeros_like(lp)).sum(dim=1)
        per_seq = torch.nn.functional.binary_cross_entropy_with_logits(reward, y, reduction="none")
        if self.reduction == "none":
            return per_seq
        total = per_seq.sum()
        return total if self.reduction == "sum" else total / max(1, per_seq.numel())  # empty: 0

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}"
