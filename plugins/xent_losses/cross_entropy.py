"""Cross-entropy with class weights, label smoothing, z-loss, logit soft-capping and temperature."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import (
    check_class_vector,
    check_num_items,
    check_number,
    check_reduction,
    class_weights,
    prepare,
    reduce,
)

_WHO = "cross-entropy"


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
    num_items = check_num_items(num_items, _WHO)
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index)
    w = check_class_vector(weight, b, "weight", _WHO)
    z = b.logits
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z - lse[:, None]
    num_classes = b.num_classes
    denominator = None
    if b.probs is not None:
        q = b.probs
        if label_smoothing:
            q = (1.0 - label_smoothing) * q + label_smoothing / num_classes
        if w is not None:
            q = q * w
        per_item = -(q * logp).sum(-1)
    else:
        assert b.ids is not None
        nll = -logp.gather(1, b.ids[:, None]).squeeze(1)
        w_y = w[b.ids] if w is not None else None
        if w_y is not None:
            nll = w_y * nll
            denominator = torch.where(b.valid, w_y, torch.zeros_like(w_y)).sum()
        if label_smoothing:
            smooth = -(logp * w).sum(-1) if w is not None else -logp.sum(-1)
            per_item = (1.0 - label_smoothing) * nll + (label_smoothing / num_classes) * smooth
        else:
            per_item = nll
    loss = reduce(per_item, b, reduction, denominator, num_items)
    if z_loss:
        loss = loss + z_loss * reduce(lse.square(), b, reduction, num_items=num_items)
    return loss


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with class weights, label smoothing, z-loss, softcap and temperature.

    With ``z = softcap * tanh(logits / softcap) / temperature`` (the cap, then the temperature;
    each step skipped at its default), ``lse = logsumexp(z)`` and ``log p = z - lse``:

    - class-id targets ``y``: ``l = (1 - eps) * w_y * (-log p_y) + (eps / C) * sum_k w_k * (-log p_k)``;
      ``mean`` divides the sum by ``sum_i w_{y_i}`` over non-ignored items (PyTorch's semantics);
    - probability targets ``q`` (shape (..., C)): ``q <- (1 - eps) q + eps / C``,
      ``l = -sum_k w_k q_k log p_k``; ``mean`` divides by the number of items;
    - ``z_loss > 0`` adds ``z_loss * lse^2`` per item (PaLM), reduced without class weights.

    Parameters: ``weight`` (per-class weights, non-negative, default none), ``ignore_index``
    (-100), ``reduction`` (``mean``/``sum``/``none``), ``label_smoothing`` (eps in [0, 1], 0),
    ``z_loss`` (coefficient >= 0, 0; PaLM uses 1e-4), ``softcap`` (cap > 0, none; Gemma 2 uses 30
    for final logits), ``temperature`` (> 0, 1). Inputs: ``logits`` (..., C) and ``targets``
    (class ids (...) or probabilities (..., C)), optional ``num_items``: the denominator of
    ``mean`` (e.g. the valid-token count of the whole accumulated batch), so micro-batch losses
    add up to the full-batch mean. Half-precision inputs are computed in float32.

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
        self.ignore_index = int(ignore_index)
        self.reduction = check_reduction(reduction)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
        self.z_loss = check_number("z_loss", z_loss, low=0.0)
        self.softcap = (
            None if softcap is None else check_number("softcap", softcap, low=0.0, low_open=True)
        )
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)

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
