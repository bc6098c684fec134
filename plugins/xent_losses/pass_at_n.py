"""Pass@N loss: -log of the probability that N samples contain the target at least once."""

from __future__ import annotations

import math

import torch

from xent_core import validate
from xent_core.base_loss import Loss

from ._common import check_index, check_reduction, prepare, reduce

_WHO = "pass-at-n"
_TINY_LOG_P = -40.0  # below it, n p replaces 1 - (1 - p)^n (relative error < n * 1e-18)


def log1mexp(a: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(a))`` for a <= 0, accurate near 0 (expm1) and far below it (log1p)."""
    half = -math.log(2.0)
    near_zero = torch.log(-torch.expm1(a))
    far = torch.log1p(-torch.exp(a.clamp(max=half)))  # clamped: finite where not taken
    return torch.where(a > half, near_zero, far)


def log_one_minus_target_prob(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(N,) ``log(1 - p_y)``, accurate for every p_y.

    For p_y > 1/2 it is ``logsumexp_{k != y} z_k - logsumexp_k z_k`` (``log1p(-p_y)`` would
    lose every digit as p_y -> 1); for p_y <= 1/2 it is ``log1p(-p_y)`` (the difference of two
    log-sum-exps would lose the digits of a small p_y).
    """
    lse = torch.logsumexp(logits, dim=-1)
    log_p = logits.gather(1, ids[:, None]).squeeze(1) - lse
    others = logits.scatter(1, ids[:, None], float("-inf"))
    from_others = torch.logsumexp(others, dim=-1) - lse
    half = -math.log(2.0)
    # clamped so the branch not taken stays finite (its zero gradient must not meet an inf)
    from_p = torch.log1p(-torch.exp(log_p.clamp(max=half)))
    return torch.where(log_p > half, from_others, from_p)


def pass_at_n_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    n: int = 4,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`PassAtNLoss`."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, soft_ok=False, min_classes=2)
    assert b.ids is not None
    log_miss = n * log_one_minus_target_prob(b.logits, b.ids)  # log (1 - p)^n
    # Once p_y is tiny, (1 - p)^n rounds to 1 (p itself underflows below log p ~ -103 in
    # float32) and log(1 - 1) = -inf; there 1 - (1 - p)^n = n p to relative error (n - 1) p / 2.
    log_p = torch.log_softmax(b.logits, dim=-1).gather(1, b.ids[:, None]).squeeze(1)
    tiny = log_p < _TINY_LOG_P
    exact = -log1mexp(torch.where(tiny, torch.full_like(log_miss, -1.0), log_miss))
    per_item = torch.where(tiny, -math.log(n) - log_p, exact)  # -log(1 - (1 - p)^n)
    return reduce(per_item, b, reduction)


class PassAtNLoss(Loss):
    """Pass@N loss -log(1 - (1 - p_y)^N): aligns training with pass@N by limiting confidence.

    ``l = -log(1 - (1 - p_y)^N)`` is minus the log-probability that at least one of N
    independent samples from ``softmax(logits)`` is the target. Its gradient is the
    cross-entropy gradient scaled by ``F = N p (1 - p)^(N - 1) / (1 - (1 - p)^N)``, which falls to
    0 as p_y -> 1 for N > 1, so the loss stops pushing confident items further (the paper's
    Direct Coverage Optimisation). N = 1 gives exactly cross-entropy. Computed from
    an accurate ``log(1 - p_y)`` and ``log(1 - exp(.))``, stable in float32; for
    ``p_y < exp(-40)`` it is ``-log(N p_y)`` (relative error below N * 1e-18), which stays finite
    where ``p_y`` underflows.

    Inputs: ``logits`` (..., C) with C >= 2, ``targets`` class ids. Applied here per item (class
    or token); the paper applies it to the probability of a whole answer.

    Args:
        n: number of samples N (integer >= 1); the paper sets it to the test-time number of
            samples, there is no universal default.
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Chen, Raventos, Cheng, Ganguli, Druckmann, "Rethinking Fine-Tuning when Scaling
    Test-Time Compute: Limiting Confidence Improves Mathematical Reasoning" (arXiv:2502.07154).
    """

    citation = (
        "Rethinking Fine-Tuning when Scaling Test-Time Compute: Limiting Confidence Improves "
        "Mathematical Reasoning",
        "arXiv:2502.07154",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(self, n: int = 4, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.n = validate.integer("n", n, low=1)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pass_at_n_loss(
            logits, targets, n=self.n, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"n={self.n}, reduction={self.reduction!r}"
