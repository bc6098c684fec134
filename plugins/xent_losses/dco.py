"""Direct Coverage Optimization (DCO): the pass@N loss on the probability of a whole answer."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_logits, check_logits, compute_dtype
from .pass_at_n import log1mexp

_WHO = "dco"
_TINY_LOG_P = -40.0  # below it, 1 - (1 - p)^N = N p to relative error < N * 1e-18


def dco_from_logprobs(logprobs: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) ``-log(1 - (1 - e^lp)^N)`` of per-sequence answer log-probabilities ``lp <= 0``.

    Stable everywhere: ``-log1mexp(N * log1mexp(lp))``; ``-lp - log N`` once ``lp < -40`` (where
    ``1 - e^lp`` rounds to 1); exactly 0 with a zero gradient at ``lp = 0``.
    """
    lp = logprobs.clamp(max=0.0)
    certain = lp == 0.0
    safe = torch.where(certain, torch.full_like(lp, -1.0), lp)  # finite in the branch not taken
    tiny = safe < _TINY_LOG_P
    exact = -log1mexp(n * log1mexp(torch.where(tiny, torch.full_like(safe, -1.0), safe)))
    value = torch.where(tiny, -safe - math.log(n), exact)
    return torch.where(certain, torch.zeros_like(value), value)


def coverage_weight(logprobs: torch.Tensor, n: int) -> torch.Tensor:
    """``F = N p (1 - p)^(N-1) / (1 - (1 - p)^N)``: DCO's gradient is ``F`` times that of ``-lp``.

    Computed in log space (detached); ``F -> 1`` as ``p -> 0``; at ``p = 1`` it is 1 for N = 1
    and 0 otherwise.
    """
    lp = logprobs.detach().clamp(max=0.0)
    certain = lp == 0.0
    safe = torch.where(certain, torch.full_like(lp, -1.0), lp)
    log_miss = log1mexp(safe)
    log_f = math.log(n) + safe + (n - 1) * log_miss - log1mexp(n * log_miss)
    f = torch.where(safe < _TINY_LOG_P, torch.ones_like(lp), torch.exp(log_f))
    return torch.where(certain, torch.full_like(f, 1.0 if n == 1 else 0.0), f)


def sequence_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lp, valid)``: the (B,) sum of target log-probs over non-ignored tokens of (B, T, V)."""
    check_logits(logits, _WHO, min_classes=2)
    if logits.dim() != 3:
        raise BadInputError(
            f"{_WHO}: logits must have shape (B, T, V) (one answer per row), got {tuple(logits.shape)}"
        )
    _check_targets(targets, tuple(logits.shape[:2]), logits.device)
    ids = targets.long()
    keep = ids != ignore_index
    v = logits.shape[-1]
    if input_checks_enabled() and bool((keep & ((ids < 0) | (ids >= v))).any()):
        raise BadInputError(
            f"{_WHO}: target ids must lie in [0, {v}) or equal ignore_index={ignore_index}"
        )
    flat = logits.to(compute_dtype(logits))
    if input_checks_enabled():
        check_finite_logits(flat.reshape(-1, v), _WHO)
    logp = torch.log_softmax(flat, dim=-1)
    tok = logp.gather(-1, torch.where(keep, ids, 0)[..., None]).squeeze(-1)
    return torch.where(keep, tok, torch.zeros_like(tok)).sum(dim=1), keep.any(dim=1)


def _check_targets(targets: Any, shape: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(targets, torch.Tensor):
        raise BadInputError(f"{_WHO}: targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.is_floating_point() or targets.dtype == torch.bool or targets.is_complex():
        raise BadInputError(f"{_WHO}: targets must be integer token ids, got {targets.dtype}")
    if tuple(targets.shape) != shape:
        raise BadInputError(f"{_WHO}: targets must have shape {shape}, got {tuple(targets.shape)}")
    if targets.device != device:
        raise BadInputError(f"{_WHO}: targets are on {targets.device}, the scores on {device}")


class DCOLoss(Loss):
    """DCO: -log(1 - (1 - p)^N) with p the probability of the whole answer (pass@N coverage).

    With ``lp = log p(answer | prompt) = sum_{t in answer} log p(y_t | y_<t, x)`` (a **sum** over
    the answer's tokens, not a mean),

        l = -log(1 - (1 - e^lp)^N) = -log1mexp(N log1mexp(lp)),

    minus the log-probability that at least one of N sampled answers is the right one. Its
    gradient is ``F(N, p)`` times the sequence cross-entropy gradient, with
    ``F = N p (1-p)^(N-1) / (1 - (1-p)^N)``: answers the model already covers (p large) stop
    being pushed, so confidence stays limited. N = 1 is the sequence cross-entropy ``-lp``; for
    p -> 0 the loss is ``-lp - log N``. Unlike ``pass-at-n`` (the same transform applied to each
    token's or class's probability separately) it couples the whole answer.

    Inputs, one of: ``logprobs`` (B,) answer log-probabilities; ``logits`` (B, T, V) +
    ``targets`` (B, T) with prompt and padding set to ``ignore_index``; or ``hidden`` (B, T, D) +
    ``classifier`` (V, D) (+ ``bias``) + ``targets``, summed from ``linear-cross-entropy`` with
    ``reduction='none'`` so the (B, T, V) logits are never built. Sequences without an answer
    token are ignored.

    Args:
        n: test-time number of samples N (integer >= 1; the paper sweeps 1-256, default 4).
        min_weight: drop sequences whose weight F(N, p) is below it (None keeps all).
        ignore_index: target id of prompt and padding tokens.
        reduction: ``mean`` (over kept sequences), ``sum`` or ``none`` ((B,), 0 when dropped).

    Citation: Chen, Raventos, Cheng, Ganguli, Druckmann, "Rethinking Fine-Tuning when Scaling
    Test-Time Compute: Limiting Confidence Improves Mathematical Reasoning" (arXiv:2502.07154).
    """

    citation = (
        "Rethinking Fine-Tuning when Scaling Test-Time Compute: Limiting Confidence Improves "
        "Mathematical Reasoning",
        "arXiv:2502.07154",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Logits (3, 4, 7) and targets (3, 4) with a prompt token ignored, for the sweep."""
        targets = torch.randint(0, 7, (3, 4), generator=generator)
        targets[:, 0] = -100  # the prompt
        return {"logits": torch.randn(3, 4, 7, generator=generator) * 2, "targets": targets}

    def __init__(
        self,
        n: int = 4,
        min_weight: float | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.n = validate.integer("n", n, low=1)
        self.min_weight = validate.optional(validate.nonnegative, "min_weight", min_weight)
        self.ignore_index = validate.integer("ignore_index", ignore_index)
        self.reduction = validate.reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        logprobs: torch.Tensor | None = None,
        hidden: torch.Tensor | None = None,
        classifier: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lp, valid = self._answer_logprobs(logits, targets, logprobs, hidden, classifier, bias)
        per_seq = dco_from_logprobs(lp, self.n)
        if self.min_weight is not None:
            valid = valid & (coverage_weight(lp, self.n) >= self.min_weight)
        per_seq = torch.where(valid, per_seq, torch.zeros_like(per_seq))
        if self.reduction == "none":
            return per_seq
        total = per_seq.sum()
        if self.reduction == "sum":
            return total
        return total / valid.sum().clamp(min=1).to(total.dtype)

    def _answer_logprobs(
        self,
        logits: torch.Tensor | None,
        targets: torch.Tensor | None,
        logprobs: torch.Tensor | None,
        hidden: torch.Tensor | None,
        classifier: torch.Tensor | None,
        bias: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        options = (("logits", logits), ("logprobs", logprobs), ("hidden", hidden))
        given = [k for k, v in options if v is not None]
        if len(given) != 1:
            raise BadInputError(
                f"{_WHO} takes exactly one of logprobs (B,), logits (B, T, V) + targets, or "
                f"hidden (B, T, D) + classifier + targets; got {given or 'none'}"
            )
        if logprobs is not None:
            if not isinstance(logprobs, torch.Tensor) or not logprobs.is_floating_point():
                raise BadInputError(f"{_WHO}: logprobs must be a floating-point tensor (B,)")
            if logprobs.dim() != 1:
                raise BadInputError(
                    f"{_WHO}: logprobs must be one answer log-probability per sequence (B,), got "
                    f"shape {tuple(logprobs.shape)} (sum token log-probs over the answer first)"
                )
            lp = logprobs.to(compute_dtype(logprobs))
            if input_checks_enabled() and (
                not bool(torch.isfinite(lp).all()) or bool((lp > 1e-6).any())
            ):
                raise BadInputError(f"{_WHO}: logprobs must be finite log-probabilities (<= 0)")
            return lp, torch.ones_like(lp, dtype=torch.bool)
        if targets is None:
            raise BadInputError(f"{_WHO}: {given[0]} needs targets (B, T)")
        if logits is not None:
            return sequence_logprobs(logits, targets, self.ignore_index)
        return self._linear_logprobs(hidden, classifier, bias, targets)

    def _linear_logprobs(
        self,
        hidden: Any,
        classifier: Any,
        bias: Any,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import xent_core

        if classifier is None:
            raise BadInputError(f"{_WHO}: hidden needs classifier (V, D)")
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise BadInputError(f"{_WHO}: hidden must have shape (B, T, D)")
        _check_targets(targets, tuple(hidden.shape[:2]), hidden.device)
        lce = xent_core.loss(
            "linear-cross-entropy", reduction="none", ignore_index=self.ignore_index
        )
        token_ce = lce(hidden, classifier, targets, bias=bias)
        valid = (targets != self.ignore_index).any(dim=1)
        return -token_ce.reshape(targets.shape).sum(dim=1), valid

    def extra_repr(self) -> str:
        return f"n={self.n}, reduction={self.reduction!r}"
