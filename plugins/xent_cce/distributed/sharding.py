"""Which classifier rows a rank holds, and the global count of non-ignored tokens."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from xent_core import BadInputError, BadParameterError, NotAvailableError


def group_rank_size(group: Any | None) -> tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        raise NotAvailableError(
            "torch.distributed is not initialised: call torch.distributed.init_process_group(...) "
            "first (torchrun sets the environment it needs)"
        )
    return dist.get_rank(group), dist.get_world_size(group)


def vocab_shard_range(
    vocab_size: int, group: Any | None = None, *, sizes: list[int] | None = None
) -> tuple[int, int]:
    """``(start, stop)`` of this rank's rows when ``vocab_size`` rows are split over ``group``.

    Default split: contiguous, the first ``vocab_size % world`` ranks get one row more (uneven
    shards are fine). ``sizes`` (one count per rank, summing to ``vocab_size``) overrides it.
    ``group=None`` is the default (world) group, as in torch.distributed.
    """
    rank, world = group_rank_size(group)
    if sizes is None:
        base, extra = divmod(int(vocab_size), world)
        sizes = [base + (1 if r < extra else 0) for r in range(world)]
    sizes = [int(s) for s in sizes]
    if len(sizes) != world or any(s < 0 for s in sizes) or sum(sizes) != vocab_size:
        raise BadParameterError(
            f"sizes must hold {world} non-negative row counts summing to {vocab_size}, got {sizes}"
        )
    start = sum(sizes[:rank])
    return start, start + sizes[rank]


def shard_classifier(
    classifier: torch.Tensor, group: Any | None = None, *, sizes: list[int] | None = None
) -> tuple[torch.Tensor, int]:
    """This rank's contiguous rows of ``classifier`` (V, D) (or of a bias (V,)) and their offset.

    Returns ``(shard, vocab_start)``: ``shard`` is a fresh copy (the full tensor can be freed),
    with ``requires_grad`` as the input's; pass it and ``vocab_start`` to
    :func:`vocab_parallel_linear_cross_entropy`. Shards may be uneven (see
    :func:`vocab_shard_range`). For vocabularies too large for one rank, build each shard
    directly from :func:`vocab_shard_range` instead of slicing a full tensor.
    """
    if classifier.dim() not in (1, 2):
        raise BadInputError(
            f"classifier must be (V, D) (or a bias (V,)), got shape {tuple(classifier.shape)}"
        )
    start, stop = vocab_shard_range(classifier.shape[0], group, sizes=sizes)
    shard = classifier.detach()[start:stop].clone()
    shard.requires_grad_(classifier.requires_grad)
    return shard, start


def global_num_items(
    targets: torch.Tensor, ignore_index: int = -100, group: Any | None = None
) -> torch.Tensor:
    """Number of non-ignored targets summed over ``group`` (0-dim int64 tensor, targets' device).

    Pass it as ``num_items`` so that ``reduction="mean"`` divides by the global count. For
    gradient accumulation pass the targets of every micro-batch of the step (or add the counts).
    Without an initialised process group it is the local count. ``group=None`` is the world group.
    """
    count = (targets != ignore_index).sum().to(torch.int64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        dist.all_reduce(count, op=dist.ReduceOp.SUM, group=group)
    return count
