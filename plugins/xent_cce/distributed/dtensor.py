"""DTensor inputs of the distributed linear cross-entropy: map them to local tensors, or refuse.

Handled:

* classifier sharded on the vocabulary dim (``Shard(0)`` on one mesh dim, ``Replicate()`` on the
  others) -> vocab-parallel over that mesh dim's group, using the local rows and their global
  offset; ``hidden`` must then be a ``Replicate()`` DTensor on the same mesh, or a plain tensor
  with ``vocab_parallel=<that group>`` passed to confirm it is the same on every rank;
* classifier and hidden replicated -> the local computation on their local tensors.

Everything else (token-sharded ``hidden``, ``Partial`` placements, a classifier sharded on D, a
plain ``hidden`` next to a vocab-sharded classifier without ``vocab_parallel``) raises a
:class:`~xent_core.BadInputError` that says what to pass instead. Nothing is gathered.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.distributed as dist

from xent_core import BadInputError

_TOKEN_SHARDED_HINT = (
    "pass hidden.to_local() with this rank's targets (data parallel: DDP/FSDP reduce the "
    "gradients; use num_items=global_num_items(targets, group=...) for a global mean), or "
    "gather explicitly with hidden.redistribute(placements=[Replicate()] * mesh.ndim)"
)


def _dtensor_type() -> Any:
    """The DTensor class if its module is loaded (no DTensor can exist otherwise; importing it
    costs seconds, which a plain single-device call must not pay)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def is_dtensor(*tensors: Any) -> bool:
    """True if any argument is a ``torch.distributed.tensor.DTensor``."""
    dtensor = _dtensor_type()
    return dtensor is not None and any(isinstance(t, dtensor) for t in tensors)


def _all_replicate(t: Any) -> bool:
    from torch.distributed.tensor import Replicate

    return all(isinstance(p, Replicate) for p in t.placements)


def replicated_local(name: str, t: Any) -> Any:
    if not is_dtensor(t):
        return t
    if not _all_replicate(t):
        hint = (
            _TOKEN_SHARDED_HINT
            if name in ("hidden", "targets")
            else "pass a replicated or vocabulary-sharded DTensor"
        )
        raise BadInputError(
            f"{name} is a DTensor with placements {tuple(t.placements)}; the linear "
            f"cross-entropy needs it replicated on its mesh: {hint}"
        )
    return t.to_local()


def _same_ranks(a: Any, b: Any) -> bool:
    return dist.get_process_group_ranks(a) == dist.get_process_group_ranks(b)


def _vocab_shard_dim(classifier: Any) -> int | None:
    """The mesh dim the classifier rows are sharded over (None: replicated); else refuse."""
    from torch.distributed.tensor import Replicate, Shard

    placements = tuple(classifier.placements)
    shard_dims = [d for d, p in enumerate(placements) if isinstance(p, Shard) and p.dim in (0, -2)]
    others_replicated = all(
        isinstance(p, Replicate) for d, p in enumerate(placements) if d not in shard_dims
    )
    if len(shard_dims) > 1 or not others_replicated:
        raise BadInputError(
            f"classifier is a DTensor with placements {tuple(classifier.placements)}; supported: "
            "rows sharded on ONE mesh dim (Shard(0)) and Replicate() elsewhere, or fully "
            "replicated. Redistribute it that way, or pass classifier.to_local() with "
            "vocab_parallel=group and vocab_start=<first global row>"
        )
    return shard_dims[0] if shard_dims else None


def resolve_dtensors(
    hidden: Any,
    classifier: Any,
    bias: Any,
    targets: Any,
    *,
    vocab_parallel: Any,
    vocab_start: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, Any, int | None]:
    """``(hidden, classifier, bias, targets, vocab_parallel, vocab_start)`` as plain tensors."""
    if not is_dtensor(hidden, classifier, bias, targets):
        return hidden, classifier, bias, targets, vocab_parallel, vocab_start
    hidden_is_dt = is_dtensor(hidden)
    hidden_local = replicated_local("hidden", hidden)
    targets_local = replicated_local("targets", targets)

    if not is_dtensor(classifier):
        return (
            hidden_local,
            classifier,
            replicated_local("bias", bias),
            targets_local,
            vocab_parallel,
            vocab_start,
        )

    mesh = classifier.device_mesh
    if hidden_is_dt and hidden.device_mesh != mesh:
        raise BadInputError(
            "hidden and classifier are DTensors on different device meshes; put them on the same "
            "mesh (hidden replicated)"
        )
    mesh_dim = _vocab_shard_dim(classifier)

    if mesh_dim is None:  # replicated classifier: a local computation
        if vocab_parallel is not None:
            raise BadInputError(
                "vocab_parallel was given but the classifier DTensor is replicated, not sharded "
                "on the vocabulary: shard it (Shard(0)) or drop vocab_parallel"
            )
        if not hidden_is_dt:
            raise BadInputError(
                "classifier is a replicated DTensor but hidden is a plain tensor, so it may differ "
                "across ranks and the classifier gradient would not be replicated: pass hidden "
                "as a Replicate() DTensor on the classifier's mesh, or pass classifier.to_local() "
                "and let DDP/FSDP reduce its gradient"
            )
        bias_local = bias
        if is_dtensor(bias):
            bias_local = replicated_local("bias", bias)
        return hidden_local, classifier.to_local(), bias_local, targets_local, None, None

    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    group = mesh.get_group(mesh_dim)
    _, offset = compute_local_shape_and_global_offset(classifier.shape, mesh, classifier.placements)
    start = int(offset[0])
    if vocab_parallel is None and not hidden_is_dt:
        raise BadInputError(
            "classifier is a DTensor sharded on the vocabulary dim but hidden is a plain tensor. "
            "If hidden is the same on every rank of the classifier's mesh (tensor parallel), pass "
            "vocab_parallel=classifier.device_mesh.get_group(<dim>) to say so, or hidden as a "
            "Replicate() DTensor. If it is FSDP2's sharded parameter and hidden differs per rank, "
            "compute the loss inside the FSDP module's forward (where the parameter is unsharded) "
            "or gather explicitly with classifier.full_tensor()"
        )
    if vocab_parallel is not None and not _same_ranks(vocab_parallel, group):
        raise BadInputError(
            f"vocab_parallel group has ranks {dist.get_process_group_ranks(vocab_parallel)} but "
            f"the classifier is sharded over ranks {dist.get_process_group_ranks(group)}"
        )
    if vocab_start is not None and vocab_start != start:
        raise BadInputError(
            f"vocab_start={vocab_start} but this rank's classifier rows start at {start}"
        )
    bias_local = bias
    if is_dtensor(bias):
        if bias.device_mesh != mesh or tuple(bias.placements) != tuple(classifier.placements):
            raise BadInputError(
                f"bias placements {tuple(bias.placements)} must match the classifier's "
                f"{tuple(classifier.placements)} on the same mesh"
            )
        bias_local = bias.to_local()
    return hidden_local, classifier.to_local(), bias_local, targets_local, group, start
