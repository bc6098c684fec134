"""Shared input checks and reductions for the losses of this plugin.

Every loss follows the same steps: check its parameters once (:func:`check_reduction`,
:func:`check_number`, :func:`class_weights`), turn ``logits``/``targets`` into a flat
:class:`Batch` (:func:`prepare`), compute one value per item, and reduce it over the valid
(non-ignored) items (:func:`reduce`). Half-precision inputs are upcast to float32; float64 stays
float64. The returned loss has that compute dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xent_core import BadInputError, BadParameterError, input_checks_enabled, validate

REDUCTIONS = ("mean", "sum", "none")


# ------------------------------------------------------------------------------ parameters
def check_reduction(reduction: object) -> str:
    """Return ``reduction`` if it is ``mean``, ``sum`` or ``none``; raise otherwise."""
    return validate.reduction(reduction)


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number inside the given bounds; return it."""
    return validate.number(name, value, low=low, high=high, low_open=low_open, high_open=high_open)


def check_index(name: str, value: object) -> int:
    """An integer class id such as ``ignore_index`` (not a bool, a float or ``None``)."""
    return validate.integer(name, value)


def class_weights(name: str, weight: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    """Validate per-class weights (finite, non-negative) and return them as a float64 tensor."""
    if weight is None:
        return None
    try:
        tensor = torch.as_tensor(weight, dtype=torch.float64).detach().clone().cpu()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise BadParameterError(f"{name} must be a list of numbers, got {weight!r}") from exc
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise BadParameterError(
            f"{name} must be a non-empty 1-D list of per-class numbers, got shape {tuple(tensor.shape)}"
        )
    if not torch.isfinite(tensor).all():
        raise BadParameterError(f"{name} must be finite, got {tensor.tolist()}")
    if (tensor < 0).any():
        raise BadParameterError(f"{name} must be non-negative, got {tensor.tolist()}")
    return tensor


def choice(name: str, value: object, options: Sequence[str]) -> str:
    """Check that ``value`` is one of ``options``."""
    return validate.choice(name, value, options)


# ------------------------------------------------------------------------------ inputs
def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other floating dtype is computed in float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


@dataclass
class Batch:
    """Flattened, validated inputs of a classification loss."""

    logits: torch.Tensor
    """(N, C) logits in the compute dtype."""
    ids: torch.Tensor | None
    """(N,) int64 class ids (ignored items replaced by 0), or None for probability targets."""
    probs: torch.Tensor | None
    """(N, C) probability targets in the compute dtype, or None for class ids."""
    valid: torch.Tensor
    """(N,) bool: items that count (not ``ignore_index``)."""
    lead_shape: torch.Size
    """The leading shape of the inputs, restored by ``reduction='none'``."""

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[-1])

    @property
    def num_items(self) -> int:
        return int(self.logits.shape[0])

    def one_hot(self) -> torch.Tensor:
        """Targets as (N, C) probabilities (one-hot rows for class ids; zero rows if ignored)."""
        if self.probs is not None:
            return self.probs
        assert self.ids is not None
        out = torch.zeros_like(self.logits)
        out.scatter_(1, self.ids[:, None], 1.0)
        return out * self.valid[:, None].to(out.dtype)


def check_logits(logits: object, who: str, *, min_classes: int = 1) -> torch.Tensor:
    """Check that ``logits`` is a floating tensor of shape (..., C) with ``C >= min_classes``."""
    if not isinstance(logits, torch.Tensor):
        raise BadInputError(f"{who}: logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise BadInputError(
            f"{who}: logits must be a floating-point tensor (float16/bfloat16/float32/float64), "
            f"got {logits.dtype}"
        )
    if logits.dim() < 1:
        raise BadInputError(f"{who}: logits must have shape (..., C), got a 0-d tensor")
    if logits.shape[-1] < min_classes:
        raise BadInputError(
            f"{who}: logits need at least {min_classes} classes in the last dimension, "
            f"got shape {tuple(logits.shape)}"
        )
    return logits


def check_finite_logits(flat: torch.Tensor, who: str) -> None:
    """Refuse NaN or ``+inf`` logits with one reduction pass (``amax`` propagates NaN).

    ``-inf`` marks a masked class and is allowed. Costs one read of the logits and no (N, C)
    buffer; skipped when input checks are off (``xent_core.input_checks(False)``).
    """
    if flat.numel() == 0:
        return
    top = flat.amax()
    if not bool(top < float("inf")):
        what = "NaN" if bool(torch.isnan(top)) else "+inf"
        raise BadInputError(
            f"{who}: logits contain {what}; logits must be finite (-inf marks a masked class)"
        )


def check_finite_rows(flat: torch.Tensor, per_row: torch.Tensor, who: str) -> None:
    """Refuse NaN or ``+inf`` logits, given a per-row result that is NaN on every row with one.

    A softmax-based per-row value (a gathered log-probability, even times 0 on an ignored row)
    is NaN on every row holding a NaN or ``+inf`` logit, and on a few valid ones (a row all
    ``-inf``); only those rows are read again, so for good input the check costs an (N,) test
    instead of a pass over the logits. Call it only when input checks are on.
    """
    suspects = torch.isnan(per_row.detach())
    if bool(suspects.any()):
        check_finite_logits(flat[suspects], who)


def check_finite_values(tensor: torch.Tensor, who: str, name: str) -> None:
    """Refuse NaN or +-inf anywhere in ``tensor`` (features, embeddings, views) in one pass.

    Unlike logits, these inputs have no masked-class convention, so ``-inf`` is refused too.
    Skipped when input checks are off (``xent_core.input_checks(False)``).
    """
    if tensor.numel() == 0 or not tensor.is_floating_point() or not input_checks_enabled():
        return
    if not bool(torch.isfinite(tensor.detach().abs().amax())):
        what = "NaN" if bool(torch.isnan(tensor.detach()).any()) else "inf"
        raise BadInputError(f"{who}: {name} contains {what}; it must be finite")


def prepare(
    logits: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    who: str,
    ignore_index: int = -100,
    soft_ok: bool = True,
    min_classes: int = 1,
    upcast: bool = True,
    finite_check: bool = True,
) -> Batch:
    """Validate ``logits`` (..., C) and ``targets`` and flatten them into a :class:`Batch`.

    ``targets`` are int class ids of shape (...) (``ignore_index`` marks ignored items) or, when
    ``soft_ok``, floating probabilities of shape (..., C). ``targets=None`` means every item
    counts and no target is needed (e.g. the z-loss). With ``upcast=False`` the logits keep
    their dtype (a loss that computes in float32 block by block needs no float32 copy).
    When input checks are on, NaN or ``+inf`` logits are refused (one reduction pass);
    ``-inf`` is allowed (a masked class). ``finite_check=False`` leaves that test to the
    caller (e.g. :func:`check_finite_rows` on its per-row result).
    """
    ignore_index = check_index("ignore_index", ignore_index)
    check_logits(logits, who, min_classes=min_classes)
    lead = logits.shape[:-1]
    num_classes = int(logits.shape[-1])
    dtype = compute_dtype(logits)
    flat = logits.reshape(-1, num_classes)
    if upcast:
        flat = flat.to(dtype)
    if finite_check and input_checks_enabled():
        check_finite_logits(flat, who)
    n = flat.shape[0]
    if targets is None:
        valid = torch.ones(n, dtype=torch.bool, device=logits.device)
        return Batch(flat, None, None, valid, lead)
    if not isinstance(targets, torch.Tensor):
        raise BadInputError(f"{who}: targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.device != logits.device:
        raise BadInputError(
            f"{who}: targets are on {targets.device} but logits are on {logits.device}"
        )
    if targets.is_floating_point():
        if not soft_ok:
            raise BadInputError(
                f"{who}: targets must be integer class ids of shape {tuple(lead)}, "
                f"got {targets.dtype} (this loss does not take probability targets)"
            )
        if targets.shape != logits.shape:
            raise BadInputError(
                f"{who}: probability targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)} (class ids must be an integer tensor)"
            )
        probs = targets.reshape(-1, num_classes).to(dtype)
        if probs.numel() and input_checks_enabled():
            low, high = torch.aminmax(probs)  # one pass; NaN propagates to both
            if not bool((low >= 0) & (high < float("inf"))):
                raise BadInputError(f"{who}: probability targets must be finite and non-negative")
        valid = torch.ones(n, dtype=torch.bool, device=logits.device)
        return Batch(flat, None, probs, valid, lead)
    if targets.dtype == torch.bool or targets.is_complex():
        raise BadInputError(f"{who}: targets must be integer class ids, got {targets.dtype}")
    if targets.shape != lead:
        hint = f" or probabilities of shape {tuple(logits.shape)}" if soft_ok else ""
        raise BadInputError(
            f"{who}: targets must be class ids of shape {tuple(lead)}{hint} to match logits of "
            f"shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    ids = targets.reshape(-1).long()
    valid = ids != ignore_index
    bad = valid & ((ids < 0) | (ids >= num_classes))
    if input_checks_enabled() and bad.any():
        example = int(ids[bad][0])
        raise BadInputError(
            f"{who}: target {example} is out of range: class ids must lie in [0, {num_classes}) "
            f"or equal ignore_index={ignore_index}"
        )
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    return Batch(flat, ids, None, valid, lead)


def per_item_input(
    value: object, name: str, batch: Batch, who: str, *, kind: str = "float", trailing: bool = False
) -> torch.Tensor:
    """Validate an auxiliary per-item input (``features``, ``sample_ids``, ``values``).

    Its leading shape must equal the logits' leading shape; with ``trailing`` it may carry extra
    trailing dimensions, which are flattened into one. Returns (N,) or (N, M).
    """
    if value is None:
        raise BadInputError(f"{who} needs the input {name!r} (got none)")
    if not isinstance(value, torch.Tensor):
        raise BadInputError(f"{who}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if value.device != batch.logits.device:
        raise BadInputError(
            f"{who}: {name} is on {value.device} but logits are on {batch.logits.device}"
        )
    if kind == "float" and not value.is_floating_point():
        raise BadInputError(f"{who}: {name} must be a floating-point tensor, got {value.dtype}")
    if kind == "int" and (
        value.is_floating_point() or value.dtype == torch.bool or value.is_complex()
    ):
        raise BadInputError(f"{who}: {name} must be an integer tensor, got {value.dtype}")
    lead = tuple(batch.lead_shape)
    if trailing:
        if tuple(value.shape[: len(lead)]) != lead or value.dim() <= len(lead):
            raise BadInputError(
                f"{who}: {name} must have shape {(*lead, '...')} (leading dims of logits, then "
                f"per-item dims), got {tuple(value.shape)}"
            )
        per_item = int(torch.tensor(value.shape[len(lead) :]).prod())
        return value.reshape(batch.num_items, per_item)
    if tuple(value.shape) != lead:
        raise BadInputError(
            f"{who}: {name} must have shape {lead} to match logits of shape "
            f"{(*tuple(batch.lead_shape), batch.num_classes)}, got {tuple(value.shape)}"
        )
    return value.reshape(-1)


def check_class_vector(
    vector: Sequence[float] | torch.Tensor | None,
    batch: Batch,
    name: str,
    who: str,
    dtype: torch.dtype | None = None,
) -> torch.Tensor | None:
    """Move a per-class parameter vector to the batch's device and dtype; check its length.

    A list (from the functional forms) is validated like a constructor parameter first.
    ``dtype`` overrides the logits' dtype (the compute dtype of a loss that does not upcast).
    """
    if vector is None:
        return None
    if not isinstance(vector, torch.Tensor):
        vector = class_weights(name, vector)
        assert vector is not None
    if vector.numel() != batch.num_classes:
        raise BadInputError(
            f"{who}: {name} has {vector.numel()} entries but logits have {batch.num_classes} classes"
        )
    return vector.to(device=batch.logits.device, dtype=dtype or batch.logits.dtype)


# ------------------------------------------------------------------------------ reductions
def check_num_items(num_items: object, who: str) -> float | torch.Tensor | None:
    """Validate a ``num_items`` override: ``None``, a number >= 0 or a scalar tensor."""
    if num_items is None:
        return None
    if isinstance(num_items, torch.Tensor):
        if num_items.numel() != 1:
            raise BadInputError(
                f"{who}: num_items must be a scalar, got shape {tuple(num_items.shape)}"
            )
        return num_items.reshape(())
    if isinstance(num_items, bool) or not isinstance(num_items, (int, float)):
        raise BadInputError(
            f"{who}: num_items must be a number or a scalar tensor, got {num_items!r}"
        )
    if not math.isfinite(num_items) or num_items < 0:
        raise BadInputError(f"{who}: num_items must be finite and >= 0, got {num_items}")
    return num_items


def reduce(
    per_item: torch.Tensor,
    batch: Batch,
    reduction: str,
    denominator: torch.Tensor | None = None,
    num_items: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce (N,) per-item losses over the valid items.

    ``mean`` divides by the number of valid items (or by ``denominator``, e.g. the sum of class
    weights, or by ``num_items`` when given: the global count across micro-batches or ranks, so
    gradient accumulation equals one big batch); an empty or fully ignored batch gives 0 with a
    zero gradient, never NaN. ``none`` returns the leading shape with ignored items set to 0.
    """
    masked = torch.where(batch.valid, per_item, torch.zeros_like(per_item))
    if reduction == "none":
        return masked.reshape(batch.lead_shape)
    total = masked.sum()
    if reduction == "sum":
        return total
    if num_items is not None:
        denominator = torch.as_tensor(num_items, dtype=total.dtype, device=total.device)
    if denominator is None:
        denominator = batch.valid.sum().to(total.dtype)
    denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return total / denominator


def soft_nll(q: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """(N,) ``-sum_k q_k log p_k`` with ``0 * log 0 = 0`` (a masked class, ``-inf``, is no NaN).

    Eager, with a target that takes no gradient: the plain product first; the masked form only
    when a row comes out non-finite (a ``0 * (-inf)``), so clean rows cost no (N, C) mask.
    """
    if not q.requires_grad and not torch.compiler.is_compiling():
        plain = -(q * logp).sum(-1)
        if bool(torch.isfinite(plain).all()):
            return plain
    return -torch.where(q == 0, torch.zeros_like(logp), q * logp).sum(-1)


def target_nll(batch: Batch) -> torch.Tensor:
    """(N,) ``-log p_y`` through PyTorch's fused ``F.cross_entropy`` (class ids only).

    One fused log-softmax + gather: no (N, C) log-probability tensor is kept for the caller,
    so losses built on ``p_y`` alone (focal, poly-1, comp-sum, bias) cost what cross-entropy
    costs. Ignored items (id replaced by 0) get a finite value that :func:`reduce` masks.
    """
    assert batch.ids is not None
    return F.cross_entropy(batch.logits, batch.ids, reduction="none")


def log_probs(batch: Batch) -> torch.Tensor:
    """(N, C) ``log_softmax`` of the batch's logits (one fused pass)."""
    return torch.log_softmax(batch.logits, dim=-1)


def target_log_prob(batch: Batch, logp: torch.Tensor) -> torch.Tensor:
    """(N,) log-probability of each item's target class (class-id targets only)."""
    assert batch.ids is not None
    return logp.gather(1, batch.ids[:, None]).squeeze(1)
