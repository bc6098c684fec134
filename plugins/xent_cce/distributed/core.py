"""The distributed linear cross-entropy: vocab-parallel shards and the ``num_items`` mean.

See :mod:`xent_cce.distributed` for the formulas. Inputs arrive checked and flat
(:func:`xent_cce.inputs.prepare_inputs`) with a checked :class:`~xent_cce.semantics.LinearCEOptions`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.distributed as dist

from xent_core import (
    BadInputError,
    BadParameterError,
    NotAvailableError,
    UnknownComponentError,
    validate,
)

from ..inputs import FlatInputs, prepare_inputs
from ..semantics import LinearCEOptions, reduce_tokens, run_kernel, token_losses
from .dtensor import is_dtensor, resolve_dtensors
from .local import ChunkedShardKernel, compute_dtype, logit_sum, target_logits
from .ops import GroupComm
from .sharding import group_rank_size

# --------------------------------------------------------------------------------------------
# Checks and kernel choice
# --------------------------------------------------------------------------------------------


def check_num_items(num_items: Any, reduction: str) -> None:
    """``num_items``: None, or a count >= 0 (number or one-element tensor), with ``mean`` only."""
    if num_items is None:
        return
    if reduction != "mean":
        raise BadParameterError(
            f"num_items only applies to reduction='mean' (got reduction={reduction!r})"
        )
    if torch.is_tensor(num_items):  # its value is not read: no device synchronisation
        if num_items.numel() != 1 or num_items.is_complex():
            raise BadParameterError(
                f"num_items must be a number or a one-element tensor, got shape "
                f"{tuple(num_items.shape)}"
            )
    elif isinstance(num_items, bool) or not isinstance(num_items, (int, float)) or num_items < 0:
        raise BadParameterError(f"num_items must be a count >= 0, got {num_items!r}")


def resolve_local_kernel(local_kernel: Any) -> Any:
    """A kernel object with ``logsumexp``: given, by registry name, ``cce-torch``, or built in."""
    if local_kernel is not None and not isinstance(local_kernel, str):
        if not callable(getattr(local_kernel, "logsumexp", None)):
            raise BadParameterError(
                "local_kernel must be a kernel name or an object with a logsumexp(hidden, "
                f"classifier, bias, *, softcap, logit_scale) method, got {type(local_kernel)}"
            )
        return local_kernel
    import xent_core

    if local_kernel is None:
        try:
            kernel = xent_core.kernel("cce-torch")
        except UnknownComponentError:
            return ChunkedShardKernel()
    else:
        kernel = xent_core.kernel(local_kernel)
    ok, why = kernel.available()
    if not ok:
        raise NotAvailableError(f"kernel {local_kernel or 'cce-torch'} cannot run here: {why}")
    return kernel


# --------------------------------------------------------------------------------------------
# The computation (flat, checked inputs and options)
# --------------------------------------------------------------------------------------------


def _per_token_loss(
    flat: FlatInputs,
    opts: LinearCEOptions,
    *,
    comm: GroupComm,
    vocab_start: int,
    kernel: Any,
    check_targets: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token losses (N,), global lse (N,) fp32 detached (both 0 where ignored), valid mask."""
    hidden, classifier, bias, targets = flat.hidden, flat.classifier, flat.bias, flat.targets
    n, v_local = hidden.shape[0], classifier.shape[0]
    dtype = compute_dtype(hidden, classifier, bias)
    device = hidden.device
    valid = targets != opts.ignore_index
    h = comm.enter(hidden)
    cap, scale = opts.softcap, opts.logit_scale

    if v_local > 0:
        lse_local = kernel.logsumexp(h, classifier, bias, softcap=cap, logit_scale=scale)
        lse_local = lse_local.to(dtype)
    else:  # an empty shard contributes exp(-inf) = 0; stay in the graph for backward's all-reduce
        anchor = h.sum(dim=1).to(dtype) + classifier.sum().to(dtype)
        if bias is not None:
            anchor = anchor + bias.sum().to(dtype)
        lse_local = torch.full((n,), float("-inf"), dtype=dtype, device=device) + 0.0 * anchor
    shift = comm.max(lse_local)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))

    local_ids = targets - vocab_start
    in_shard = valid & (local_ids >= 0) & (local_ids < v_local)
    if v_local > 0:
        safe_ids = torch.where(in_shard, local_ids, torch.zeros_like(local_ids))
        z_target = target_logits(h, classifier, bias, safe_ids, softcap=cap, logit_scale=scale)
        z_target = torch.where(in_shard, z_target, torch.zeros_like(z_target))
    else:
        z_target = torch.zeros(n, dtype=dtype, device=device)

    parts = [torch.exp(lse_local - shift), z_target, in_shard.to(dtype)]
    if opts.label_smoothing > 0:
        if v_local > 0:
            parts.append(logit_sum(h, classifier, bias, softcap=cap, logit_scale=scale))
        else:
            parts.append(torch.zeros(n, dtype=dtype, device=device))
    parts.append(torch.tensor([float(v_local)], dtype=dtype, device=device))
    packed = comm.sum(torch.cat(parts))  # the one all-reduce(sum) of the forward

    sum_exp, z_target, claimed = packed[:n], packed[n : 2 * n], packed[2 * n : 3 * n]
    vocab_size = packed[-1]
    bad = valid & (claimed != 1)
    # Identical on every rank after the all-reduce, so all ranks raise together.
    if check_targets and bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise BadInputError(
            f"{int(bad.sum())} target id(s) lie in no classifier shard or in several, e.g. "
            f"target {int(targets[i])} of token {i} (global vocabulary size {int(vocab_size)}); "
            "ids must be in [0, V) and the shards (vocab_start, rows) must tile [0, V) "
            "without overlap"
        )
    lse = shift + torch.log(sum_exp)
    smoothed = packed[3 * n : 4 * n] if opts.label_smoothing > 0 else None
    loss = token_losses(
        lse,
        z_target,
        smoothed,
        valid,
        vocab=vocab_size,
        label_smoothing=opts.label_smoothing,
        z_loss=opts.z_loss,
    )
    lse_out = torch.where(valid, lse.detach(), torch.zeros_like(lse)).float()  # as cce-* kernels
    return loss, lse_out, valid


def flat_linear_cross_entropy(
    flat: FlatInputs,
    opts: LinearCEOptions,
    *,
    kernel: Any,
    group: Any = None,
    vocab_start: int | None = None,
    num_items: Any = None,
    check_targets: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, lse)`` of checked, flat inputs (:func:`~xent_cce.inputs.prepare_inputs`).

    ``group`` (with ``vocab_start``): the classifier rows are this rank's shard (vocab-parallel);
    otherwise ``kernel`` computes locally and ``num_items`` is the ``mean`` denominator. The loss
    is flat ((N,) for ``none``); ``lse`` is (N,), 0 at ignored tokens. Called by the
    ``linear-cross-entropy`` module and by the public functions below.
    """
    check_num_items(num_items, opts.reduction)
    valid = flat.targets != opts.ignore_index
    if group is not None:
        loss, lse, valid = _per_token_loss(
            flat,
            opts,
            comm=GroupComm(group),
            vocab_start=int(vocab_start or 0),
            kernel=kernel,
            check_targets=check_targets,
        )
        return reduce_tokens(loss, valid, opts.reduction, num_items), lse
    if not callable(getattr(kernel, "linear_cross_entropy", None)):  # a shard-only kernel
        loss, lse, valid = _per_token_loss(
            flat, opts, comm=GroupComm(None), vocab_start=0, kernel=kernel, check_targets=False
        )
        return reduce_tokens(loss, valid, opts.reduction, num_items), lse
    as_sum = opts.reduction == "mean" and num_items is not None
    inner = dataclasses.replace(
        opts, reduction="sum" if as_sum else opts.reduction, return_lse=True
    )
    loss, lse = run_kernel(kernel, flat.hidden, flat.classifier, flat.targets, flat.bias, inner)
    if lse is None:  # a kernel that does not report it
        lse = torch.zeros(flat.targets.shape[0], dtype=torch.float32, device=flat.targets.device)
    lse = torch.where(valid, lse, torch.zeros_like(lse))
    if as_sum:
        loss = reduce_tokens(loss.reshape(1), valid, "mean", num_items)
    return loss, lse


def _shaped(loss: torch.Tensor, reduction: str, shape: torch.Size) -> torch.Tensor:
    return loss.reshape(shape) if reduction == "none" else loss


def vocab_parallel_linear_cross_entropy(
    hidden: torch.Tensor,
    classifier_shard: torch.Tensor,
    targets: torch.Tensor,
    *,
    group: Any,
    vocab_start: int,
    bias_shard: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    softcap: float | None = None,
    logit_scale: float = 1.0,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    num_items: int | float | torch.Tensor | None = None,
    local_kernel: Any = None,
    return_lse: bool = False,
    check_targets: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact cross-entropy of ``hidden @ classifier.T`` with the classifier rows split over ranks.

    loss_i = lse_i - (1 - eps) z_{i,t_i} - (eps / V) sum_j z_ij + z_loss * lse_i^2, where
    z_ij = softcap * tanh(logit_scale * (h_i . w_j + b_j) / softcap) and lse_i is the log-sum-exp
    over ALL V rows, obtained from per-shard log-sum-exps with one all-reduce(max) and one
    all-reduce(sum); backward does one all-reduce(sum) of d_hidden (N, D).

    Every rank of ``group`` passes the same ``hidden`` (..., D) and global target ids (...), its
    own contiguous rows ``classifier_shard`` (V_r, D) starting at global row ``vocab_start`` (and
    ``bias_shard`` (V_r,)); shards may be uneven or empty. Every rank gets the same loss;
    ``classifier_shard`` gets its own rows' gradient and ``hidden`` the full gradient.

    Args:
        group: the process group (``None``: the world group).
        vocab_start: global index of this rank's first classifier row.
        bias_shard: this rank's bias rows (V_r,), or None.
        ignore_index: target id that contributes nothing (-100).
        reduction: ``mean`` (over non-ignored tokens, or divided by ``num_items``), ``sum``, ``none``.
        softcap: Gemma 2 soft-capping value, or None.
        logit_scale: multiplies the logits before the softcap (1.0).
        label_smoothing: PyTorch's label smoothing (0.0).
        z_loss: PaLM's z-loss weight (0.0).
        num_items: the ``mean`` denominator (e.g. :func:`global_num_items`), or None.
        local_kernel: the per-shard kernel (an object with ``logsumexp``, or a registry name;
            default ``cce-torch`` if registered, else a built-in chunked one).
        return_lse: also return the global per-token log-sum-exp (N,) fp32, detached, 0 at
            ignored tokens (as the ``cce-*`` kernels).
        check_targets: raise on target ids that no shard (or several) holds, and on non-finite
            inputs, at the cost of device synchronisations (True).

    Citation: Megatron-LM (arXiv:1909.08053), Cut Cross-Entropy (arXiv:2411.09009).
    """
    opts = LinearCEOptions(
        ignore_index=ignore_index,
        reduction=reduction,
        softcap=softcap,
        logit_scale=logit_scale,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )
    check_num_items(num_items, opts.reduction)
    vocab_start = validate.integer("vocab_start", vocab_start, low=0)
    if group is None:
        group_rank_size(None)
        group = dist.group.WORLD
    check = validate.flag("check_targets", check_targets)
    flat = prepare_inputs(
        hidden,
        classifier_shard,
        targets,
        bias_shard,
        ignore_index=opts.ignore_index,
        check_values=check,
        vocab_sharded=True,
    )
    loss, lse = flat_linear_cross_entropy(
        flat,
        opts,
        kernel=resolve_local_kernel(local_kernel),
        group=group,
        vocab_start=vocab_start,
        num_items=num_items,
        check_targets=check,
    )
    out = _shaped(loss, opts.reduction, targets.shape)
    return (out, lse) if return_lse else out


# --------------------------------------------------------------------------------------------
# One entry point for every distributed case
# --------------------------------------------------------------------------------------------


def uses_distributed_path(
    hidden: Any,
    classifier: Any,
    bias: Any = None,
    *,
    vocab_parallel: Any = None,
    num_items: Any = None,
) -> bool:
    """True when :func:`distributed_linear_cross_entropy` must handle the call."""
    return (
        vocab_parallel is not None or num_items is not None or is_dtensor(hidden, classifier, bias)
    )


def distributed_linear_cross_entropy(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    vocab_parallel: Any = None,
    vocab_start: int | None = None,
    num_items: int | float | torch.Tensor | None = None,
    local_kernel: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    softcap: float | None = None,
    logit_scale: float = 1.0,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    filter_eps: float | str | None = None,
    check_targets: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear cross-entropy for the distributed cases; returns ``(loss, lse)`` like a kernel.

    * ``vocab_parallel=group`` (with ``vocab_start``), or ``classifier`` a DTensor sharded on the
      vocabulary dim: the vocab-parallel computation (``filter_eps`` is ignored there: its
      gradients are exact);
    * DTensors replicated on their mesh: computed locally on their local tensors;
    * plain tensors: the local kernel, with ``num_items`` as the ``mean`` denominator.

    Anything ambiguous (e.g. a vocab-sharded DTensor classifier with a plain ``hidden``, or a
    token-sharded DTensor ``hidden``) raises :class:`~xent_core.BadInputError` saying what to
    pass instead; nothing is ever gathered silently. ``check_targets`` checks the target ids
    and that the inputs are finite (device synchronisations).
    """
    opts = LinearCEOptions(
        ignore_index=ignore_index,
        reduction=reduction,
        softcap=softcap,
        logit_scale=logit_scale,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        filter_eps=filter_eps,
    )
    check_num_items(num_items, opts.reduction)
    check = validate.flag("check_targets", check_targets)
    hidden, classifier, bias, targets, vocab_parallel, vocab_start = resolve_dtensors(
        hidden, classifier, bias, targets, vocab_parallel=vocab_parallel, vocab_start=vocab_start
    )
    if vocab_parallel is not None:
        if vocab_start is None:
            raise BadParameterError(
                "vocab_parallel=group needs vocab_start=<global index of this rank's first "
                "classifier row> (shard_classifier returns it)"
            )
        loss, lse = vocab_parallel_linear_cross_entropy(
            hidden,
            classifier,
            targets,
            group=vocab_parallel,
            vocab_start=vocab_start,
            bias_shard=bias,
            ignore_index=opts.ignore_index,
            reduction=opts.reduction,
            softcap=opts.softcap,
            logit_scale=opts.logit_scale,
            label_smoothing=opts.label_smoothing,
            z_loss=opts.z_loss,
            num_items=num_items,
            local_kernel=local_kernel,
            return_lse=True,
            check_targets=check,
        )
        return loss, lse
    kernel = resolve_local_kernel(local_kernel)
    flat = prepare_inputs(
        hidden, classifier, targets, bias, ignore_index=opts.ignore_index, check_values=check
    )
    loss, lse = flat_linear_cross_entropy(
        flat, opts, kernel=kernel, num_items=num_items, check_targets=check
    )
    return _shaped(loss, opts.reduction, targets.shape), lse


def module_forward(
    module: Any,
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    num_items: int | float | torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The ``linear-cross-entropy`` module called with ``num_items`` (kept for older callers).

    The module itself routes ``vocab_parallel``, ``num_items`` and DTensor inputs to
    :func:`flat_linear_cross_entropy`; this is ``module(hidden, ..., num_items=num_items)``.
    """
    return module(hidden, classifier, targets, bias, num_items=num_items)
