"""The three collectives of vocab-parallel cross-entropy, as autograd functions on torch.distributed.

Megatron-style conventions for a value that is replicated on every rank of ``group``:

* :meth:`GroupComm.enter` - identity forward, all-reduce(sum) backward: applied to ``hidden``, so
  each rank's partial ``d_hidden`` (from its own classifier rows) is summed into the full gradient;
* :meth:`GroupComm.sum` - all-reduce(sum) forward, identity backward: combines per-shard partial
  statistics into the global, replicated ones; every rank then back-propagates the same loss;
* :meth:`GroupComm.max` - all-reduce(max), not differentiated (a stabilising shift only).

``GroupComm(None)`` is the single-process case: every operation is the identity.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


class _EnterGroup(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class _SumOverGroup(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        return grad, None


class GroupComm:
    """Collectives over one process group (``None``: no communication at all)."""

    def __init__(self, group: Any | None) -> None:
        self.group = group
        self.active = group is not None and dist.get_world_size(group) > 1

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """Identity forward, all-reduce(sum) of the gradient in backward."""
        if not self.active or not x.requires_grad:
            return x
        return _EnterGroup.apply(x, self.group)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """All-reduce(sum) forward, identity backward."""
        if not self.active:
            return x
        return _SumOverGroup.apply(x, self.group)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        """All-reduce(max) of a detached copy."""
        out = x.detach().contiguous().clone()
        if self.active:
            dist.all_reduce(out, op=dist.ReduceOp.MAX, group=self.group)
        return out
