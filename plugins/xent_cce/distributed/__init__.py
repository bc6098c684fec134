"""Linear cross-entropy on torch.distributed: vocab-parallel (tensor parallel) and data parallel.

Vocab-parallel. Rank ``r`` of a process group holds the contiguous classifier rows
``[start_r, start_r + V_r)`` (shards may be uneven, even empty) and the same ``hidden`` and target
ids as every other rank. With ``z_ij`` the (scaled, soft-capped) logit of token ``i`` and row ``j``:

    lse_i^(r) = log sum_{j in shard r} exp(z_ij)            local chunked kernel, never (N, V)
    m_i       = max_r lse_i^(r)                              all-reduce(max), no gradient
    lse_i     = m_i + log sum_r exp(lse_i^(r) - m_i)         \\
    z_{i,t_i} = sum_r [t_i in shard r] z_{i,t_i}             |  ONE all-reduce(sum), packed
    S_i       = sum_r sum_{j in shard r} z_ij  (smoothing)   /
    loss_i    = lse_i - (1 - eps) z_{i,t_i} - (eps / V) S_i + lambda_z lse_i^2

The all-reduces are identity in backward (every rank back-propagates the same, replicated loss), so
each rank forms its shard's softmax ``exp(z_ij - lse_i)`` from the global ``lse``, gets its own
``d_classifier`` rows, and a partial ``d_hidden`` that one all-reduce(sum) completes (``hidden``
enters through an identity-forward / all-reduce-backward function, as in Megatron-LM's
``copy_to_tensor_model_parallel_region``). No rank holds the full logits or the full classifier.

Data parallel. ``num_items`` (a global count of non-ignored tokens, :func:`global_num_items`) turns
``reduction="mean"`` into ``sum(local losses) / num_items``, so DDP/FSDP and gradient accumulation
reproduce the one-big-batch update (see ``docs/distributed.md`` for the recipe).

References: "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism"
(arXiv:1909.08053); "Cut Your Losses in Large-Vocabulary Language Models" (arXiv:2411.09009).
"""

from __future__ import annotations

from .core import (
    check_num_items,
    distributed_linear_cross_entropy,
    flat_linear_cross_entropy,
    module_forward,
    resolve_local_kernel,
    uses_distributed_path,
    vocab_parallel_linear_cross_entropy,
)
from .dtensor import is_dtensor, resolve_dtensors
from .local import ChunkedShardKernel
from .sharding import global_num_items, shard_classifier, vocab_shard_range

__all__ = [
    "ChunkedShardKernel",
    "check_num_items",
    "distributed_linear_cross_entropy",
    "flat_linear_cross_entropy",
    "global_num_items",
    "is_dtensor",
    "module_forward",
    "resolve_dtensors",
    "resolve_local_kernel",
    "shard_classifier",
    "uses_distributed_path",
    "vocab_parallel_linear_cross_entropy",
    "vocab_shard_range",
]
