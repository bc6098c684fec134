"""Cross-entropy with class weights, label smoothing, z-loss, logit soft-capping and temperature.

Three paths compute the same formula:

- class ids on the CPU, and on other devices wherever PyTorch has no equivalent (half-precision
  logits computed in float32, softcap, temperature, z-loss):
  :class:`~xent_losses._fused_ce.FusedCrossEntropy`, a chunked autograd Function that saves no
  (N, C) tensor and recomputes the softmax block by block in the backward. On the CPU it takes
  0.5-0.8x the time of ``F.cross_entropy`` in float32 (measured in docs/benchmarks.md), which
  keeps the (N, C) log-probabilities for its backward;
- class ids, float32/float64 logits, no softcap/temperature/z-loss on a GPU: PyTorch's fused
  ``F.cross_entropy`` (weights, label smoothing and ``ignore_index`` included) with
  ``reduction='sum'``; ``mean`` divides by a denominator computed from the (N,) targets, so an
  all-ignored batch gives 0 without a second pass over the (N, C) logits;
- probability targets: the composite formula below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xent_core import input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import (
    Batch,
    check_class_vector,
    check_finite_logits,
    check_finite_rows,
    check_index,
    check_num_items,
    check_reduction,
    class_weights,
    compute_dtype,
    prepare,
    reduce,
)
from ._fused_ce import FusedCrossEntropy

_WHO = "cross-entropy"


def _fast_path(
    b: Batch,
    targets: torch.Tensor,
    w: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    num_items: float | torch.Tensor | None,
) -> torch.Tensor:
    """PyTorch's fused kernel; ``mean`` with our all-ignored convention and ``num_items``."""
    assert b.ids is not None
    raw = targets.reshape(-1).long()
    fused_reduction = "none" if reduction == "none" else "sum"
    out = F.cross_entropy(
        b.logits,
        raw,
        weight=w,
        ignore_index=ignore_index,
        reduction=fused_reduction,
        label_smoothing=label_smoothing,
    )
    if reduction == "none":
        return out.reshape(b.lead_shape)
    if reduction == "sum":
        return out
    if num_items is not None:
        denominator = torch.as_tensor(num_items, dtype=out.dtype, device=out.device)
    elif w is not None:
        denominator = torch.where(b.valid, w[b.ids], torch.zeros((), dtype=w.dtype)).sum()
    else:
        denominator = b.valid.sum().to(out.dtype)
    denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return out / denominator


def _fused_path(
    b: Batch,
    w: torch.Tensor | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    temperature: float,
    num_items: float | torch.Tensor | None,
) -> torch.Tensor:
    """The chunked Function: float32 compute for half inputs, softcap, temperature, z-loss."""
    assert b.ids is not None
    dtype = compute_dtype(b.logits)
    valid = b.valid.to(dtype)
    w_y = w[b.ids] if w is not None else None
    a = valid * (1.0 - label_smoothing)
    if w_y is not None:
        a = a * w_y
    smooth = valid * (label_smoothing / b.num_classes) if label_smoothing else None
    ce, lse = FusedCrossEntropy.apply(
        b.logits, b.ids, a, smooth, w, softcap, 1.0 / temperature, bool(z_loss)
    )
    if softcap is None and input_checks_enabled():  # the cap maps +inf to a finite value
        check_finite_rows(b.logits, ce, _WHO)
    denominator = None
    if w_y is not None:
        denominator = (valid * w_y).sum()
    loss = reduce(ce, b, reduction, denominator, num_items)
    if z_loss:
        loss = loss + z_loss * reduce(lse.square(), b, reduction, num_items=num_items)
    return loss


def _soft_path(
    b: Batch,
    w: torch.Tensor | None,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    temperature: float,
    num_items: float | torch.Tensor | None,
) -> torch.Tensor:
    """Probability targets: ``-sum_k w_k q_k log p_k`` (composite; PyTorch's is the same)."""
    assert b.probs is not None
    z = b.logits
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z - lse[:, None]
    q = b.probs
    if label_smoothing:
        q = (1.0 - label_smoothing) * q + label_smoothing / b.num_classes
    if w is not None:
        q = q * w
    loss = reduce(-(q * logp).sum(-1), b, reduction, None, num_items)
    if z_loss:
        loss = loss + z_loss * reduce(lse.square(), b, reduction, num_items=num_items)
    return loss


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    temperature: float = 1.0,
    num_items: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Functional form of :class:`CrossEntropyLoss` (same formula and parameters)."""
    ignore_index = check_index("ignore_index", ignore_index)
    reduction = check_reduction(reduction)
    label_smoothing = validate.unit_interval("label_smoothing", label_smoothing)
    z_loss = validate.nonnegative("z_loss", z_loss)
    softcap = validate.optional(validate.positive, "softcap", softcap)
    temperature = validate.positive("temperature", temperature)
    num_items = check_num_items(num_items, _WHO)
    soft = isinstance(targets, torch.Tensor) and targets.is_floating_point()
    # the chunked path finds NaN / +inf logits in its own per-row result (no extra pass)
    finite_check = soft or softcap is not None
    b = prepare(
        logits, targets, who=_WHO, ignore_index=ignore_index, upcast=soft, finite_check=finite_check
    )
    dtype = compute_dtype(b.logits)
    w = check_class_vector(weight, b, "weight", _WHO, dtype=dtype)
    if b.probs is not None:
        return _soft_path(b, w, reduction, label_smoothing, z_loss, softcap, temperature, num_items)
    plain = softcap is None and temperature == 1.0 and not z_loss
    if plain and b.logits.dtype == dtype and b.logits.device.type != "cpu":
        if input_checks_enabled():
            check_finite_logits(b.logits, _WHO)
        return _fast_path(b, targets, w, ignore_index, reduction, label_smoothing, num_items)
    return _fused_path(b, w, reduction, label_smoothing, z_loss, softcap, temperature, num_items)


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with class weights, label smoothing, z-loss, softcap and temperature.

    With ``z = softcap * tanh(logits / softcap) / temperature`` (the cap, then the temperature;
    each step skipped at its default), ``lse = logsumexp(z)`` and ``log p = z - lse``:

    - class-id targets ``y``: ``l = (1 - eps) * w_y * (-log p_y) + (eps / C) * sum_k w_k * (-log p_k)``;
      ``mean`` divides the sum by ``sum_i w_{y_i}`` over non-ignored items (PyTorch's semantics);
    - probability targets ``q`` (shape (..., C)): ``q <- (1 - eps) q + eps / C``,
      ``l = -sum_k w_k q_k log p_k``; ``mean`` divides by the number of items;
    - ``z_loss > 0`` adds ``z_loss * lse^2`` per item (PaLM), reduced without class weights.

    Class ids run through a chunked autograd Function that saves no (N, C) tensor (half-precision
    logits are computed in float32 block by block); on a GPU, float32/float64 logits without
    softcap, temperature or z-loss go to PyTorch's fused ``F.cross_entropy`` instead.

    Args:
        weight: per-class weights (non-negative), default none.
        ignore_index: target id of ignored items (an integer), default -100.
        reduction: ``mean``, ``sum`` or ``none``.
        label_smoothing: eps in [0, 1], default 0.
        z_loss: coefficient >= 0, default 0 (PaLM uses 1e-4).
        softcap: cap > 0, default none (Gemma 2 uses 30 for final logits).
        temperature: > 0, default 1.

    Inputs: ``logits`` (..., C) and ``targets`` (class ids (...) or probabilities (..., C)),
    optional ``num_items``: the denominator of ``mean`` (e.g. the valid-token count of the
    whole accumulated batch), so micro-batch losses add up to the full-batch mean.
    Half-precision inputs are computed in float32.

    Citations: label smoothing, Szegedy et al., "Rethinking the Inception Architecture for
    Computer Vision" (arXiv:1512.00567); z-loss, Chowdhery et al., "PaLM: Scaling Language
    Modeling with Pathways" (arXiv:2204.02311); logit soft-capping, Gemma Team, "Gemma 2:
    Improving Open Language Models at a Practical Size" (arXiv:2408.00118).
    """

    citation = (
        ("Rethinking the Inception Architecture for Computer Vision", "arXiv:1512.00567"),
        ("PaLM: Scaling Language Modeling with Pathways", "arXiv:2204.02311"),
        ("Gemma 2: Improving Open Language Models at a Practical Size", "arXiv:2408.00118"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        weight: list[float] | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", class_weights("weight", weight), persistent=False)
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)
        self.label_smoothing = validate.unit_interval("label_smoothing", label_smoothing)
        self.z_loss = validate.nonnegative("z_loss", z_loss)
        self.softcap = validate.optional(validate.positive, "softcap", softcap)
        self.temperature = validate.positive("temperature", temperature)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        num_items: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        return cross_entropy(
            logits,
            targets,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            z_loss=self.z_loss,
            softcap=self.softcap,
            temperature=self.temperature,
            num_items=num_items,
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss}, "
            f"softcap={self.softcap}, temperature={self.temperature}, reduction={self.reduction!r}"
        )
