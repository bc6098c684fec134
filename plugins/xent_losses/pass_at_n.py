"""Pass@N loss: -log of the probability that N samples contain the target at least once."""

from __future__ import annotations

import math
from typing import Any

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


def _per_item(log_p: torch.Tensor, log_1mp: torch.Tensor, n: int) -> torch.Tensor:
    """(N,) ``-log(1 - (1 - p)^n)`` from accurate ``log p`` and ``log(1 - p)``."""
    log_miss = n * log_1mp  # log (1 - p)^n
    # Once p_y is tiny, (1 - p)^n rounds to 1 (p itself underflows below log p ~ -103 in
    # float32) and log(1 - 1) = -inf; there 1 - (1 - p)^n = n p to relative error (n - 1) p / 2.
    tiny = log_p < _TINY_LOG_P
    exact = -log1mexp(torch.where(tiny, torch.full_like(log_miss, -1.0), log_miss))
    return torch.where(tiny, -math.log(n) - log_p, exact)


_BLOCK_ELEMENTS = 1 << 20  # about 4 MiB of float32 per block


class _PassAtN(torch.autograd.Function):
    """(N,) pass@n loss per row, one fused softmax per block of rows in each direction.

    Forward, per block: ``p = softmax(z)`` and its largest entry ``p_max`` at class m (so
    ``lse = z_m - log p_max`` with ``p_max >= 1/C``: no underflow), ``log p_y = z_y - lse``, and
    ``1 - p_y`` as the sum of the other classes' probabilities (no cancellation as p_y -> 1).
    Backward: the gradient is the cross-entropy gradient ``p - onehot(y)`` times
    ``F = n p (1 - p)^(n - 1) / (1 - (1 - p)^n)``, kept as an (N,) factor; the softmax is
    recomputed one block at a time, so no (N, C) buffer is saved.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:  # type: ignore[override]
        rows, c = z.shape
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        log_p = torch.empty(rows, dtype=dtype, device=z.device)
        p_y = torch.empty(rows, dtype=dtype, device=z.device)
        others = torch.empty(rows, dtype=dtype, device=z.device)
        step = max(1, _BLOCK_ELEMENTS // max(1, c))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            zb, yb = z[r0:r1], ids[r0:r1, None]
            p = torch.softmax(zb, dim=-1, dtype=dtype)
            p_max, top = p.max(-1)
            lse = zb.gather(1, top[:, None]).squeeze(1).to(dtype) - p_max.log()
            log_p[r0:r1] = zb.gather(1, yb).squeeze(1).to(dtype) - lse
            p_y[r0:r1] = p.gather(1, yb).squeeze(1)
            others[r0:r1] = p.scatter_(1, yb, 0.0).sum(-1)
        half = -math.log(2.0)
        log_1mp = torch.where(log_p > half, others.log(), torch.log1p(-p_y))
        loss = _per_item(log_p, log_1mp, n)
        # d loss / d z = F (p - onehot(y)); log F = log n + log p + (n - 1) log(1 - p) + loss
        if n == 1:
            factor = torch.ones_like(loss)
        else:
            factor = torch.exp(math.log(n) + log_p + (n - 1) * log_1mp + loss)
            factor = torch.where(log_p < _TINY_LOG_P, torch.ones_like(factor), factor)
        ctx.save_for_backward(z, ids, factor)
        return loss

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        z, ids, factor = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        coef = g.to(factor.dtype) * factor
        rows, c = z.shape
        grad = torch.empty_like(z)
        same = z.dtype == factor.dtype
        step = max(1, _BLOCK_ELEMENTS // max(1, c))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            if same:
                p = torch.ops.aten._softmax.out(z[r0:r1], -1, False, out=grad[r0:r1])
            else:
                p = torch.softmax(z[r0:r1], dim=-1, dtype=factor.dtype)
            p.mul_(coef[r0:r1, None]).scatter_add_(1, ids[r0:r1, None], -coef[r0:r1, None])
            if not same:
                grad[r0:r1].copy_(p)
        return grad, None, None


def pass_at_n_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    n: int = 4,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`PassAtNLoss`."""
    n = validate.integer("n", n, low=1)
    b = prepare(
        logits,
        targets,
        who=_WHO,
        ignore_index=ignore_index,
        soft_ok=False,
        min_classes=2,
        upcast=False,
    )
    assert b.ids is not None
    return reduce(_PassAtN.apply(b.logits, b.ids, n), b, reduction)


def pass_at_n_reference(
    logits: torch.Tensor, targets: torch.Tensor, *, n: int = 4, ignore_index: int = -100
) -> torch.Tensor:
    """(...) per-item loss by autograd through (N, C) log-sum-exps: the general path."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index, soft_ok=False, min_classes=2)
    assert b.ids is not None
    log_p = torch.log_softmax(b.logits, dim=-1).gather(1, b.ids[:, None]).squeeze(1)
    return reduce(_per_item(log_p, log_one_minus_target_prob(b.logits, b.ids), n), b, "none")


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
