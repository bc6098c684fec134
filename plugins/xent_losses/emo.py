"""EMO: the earth-mover-distance upper bound with a cosine cost between token embeddings."""

from __future__ import annotations

import torch

from xent_core import BadInputError, BadParameterError
from xent_core.base_loss import Loss

from ._common import (
    Batch,
    check_finite_values,
    check_index,
    check_number,
    check_reduction,
    choice,
    compute_dtype,
    log_probs,
    prepare,
    reduce,
    soft_nll,
)
from ._emo_ids import EmoIds

_WHO = "emo"
MIXES = ("dynamic", "none")


def unit_rows(embedding: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norm = torch.linalg.vector_norm(embedding, dim=-1, keepdim=True)
    return embedding / norm.clamp_min(torch.finfo(embedding.dtype).tiny)


def _cost_embedding(embedding: object, batch: Batch, name: str) -> torch.Tensor:
    if not isinstance(embedding, torch.Tensor) or not embedding.is_floating_point():
        raise BadInputError(f"{_WHO}: {name} must be a floating (V, D) tensor")
    if embedding.dim() != 2 or embedding.shape[0] != batch.num_classes:
        raise BadInputError(
            f"{_WHO}: {name} must have shape (V, D) with V = {batch.num_classes} (the logits' "
            f"last dimension), got {tuple(embedding.shape)}"
        )
    if embedding.device != batch.logits.device:
        raise BadInputError(
            f"{_WHO}: {name} is on {embedding.device} but logits are on {batch.logits.device}"
        )
    return unit_rows(embedding.detach().to(batch.logits.dtype))


def demd(q: torch.Tensor, target: torch.Tensor, unit_embedding: torch.Tensor) -> torch.Tensor:
    """(N,) DEMD upper bound ``sum_i sum_j q_i P_j (1 - cos(e_i, e_j))`` for unit-norm rows E.

    Computed as ``sum_j P_j - (P @ E) . (q @ E)`` (q sums to 1), which is ``1 - e_y . (q @ E)``
    for one-hot targets and stays exact for targets that do not sum exactly to 1 (rounding).
    """
    return target.sum(-1) - ((target @ unit_embedding) * (q @ unit_embedding)).sum(-1)


def emo_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    embedding: torch.Tensor,
    *,
    mix: str = "dynamic",
    max_ratio: float | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`EMOLoss`; ``embedding`` is the (V, D) cost embedding."""
    b = prepare(logits, targets, who=_WHO, ignore_index=ignore_index)
    unit = _cost_embedding(embedding, b, "embedding")
    if b.ids is not None:  # class ids: no (N, C) target, a closed-form gradient
        valid = b.valid.to(b.logits.dtype)
        rows = EmoIds.apply(b.logits, b.ids, valid, unit, mix == "dynamic", max_ratio)
        return reduce(rows, b, reduction)
    logp = log_probs(b)
    distance = demd(logp.exp(), b.one_hot(), unit)
    if mix == "none":
        return reduce(distance, b, reduction)
    ce = soft_nll(b.one_hot(), logp)
    # rounding can leave the bound a hair below 0; the ratio must not divide by 0 or flip sign
    ratio = (ce / (distance.clamp_min(0.0) + 1e-10)).detach()
    if max_ratio is not None:
        ratio = ratio.clamp(max=max_ratio)
    return reduce(0.5 * (ce + ratio * distance), b, reduction)


class EMOLoss(Loss):
    """EMO: earth mover distance upper bound (cosine cost of output embeddings) mixed with CE.

    With ``q = softmax(logits)``, target distribution ``P`` (one-hot of ``y``, or probability
    targets) and unit-normalised embedding rows ``e_i`` (V, D), the cost is
    ``C(i, j) = 1 - cos(e_i, e_j)`` and the DEMD upper bound is

        DEMD = sum_i sum_j q_i P_j C(i, j) = 1 - (sum_j P_j e_j) . (sum_i q_i e_i)

    (for one-hot targets ``1 - e_y . (q @ E)``; with identity embeddings ``1 - q_y``). The
    embedding is a fixed cost: it is detached. ``mix='dynamic'`` (default) combines it with
    cross-entropy per item as the paper's code does,
    ``l = 0.5 * (CE + sg(CE / DEMD) * DEMD)`` (value equals CE; the gradient adds the DEMD
    gradient rescaled to CE's size); ``max_ratio`` optionally caps ``CE / DEMD`` (the
    authors' later fine-tuning code uses 3.0); ``mix='none'`` returns DEMD alone.

    The cost embedding is ``embedding`` when given at construction (a (V, D) tensor copied into
    a buffer, e.g. a frozen copy of the initial output layer, as in the paper), otherwise the
    ``classifier`` input (V, D) of each call (the current output layer, detached).

    Inputs: ``logits`` (..., V), ``targets`` class ids (...) or probabilities (..., V), optional
    ``classifier`` (V, D).

    Args:
        embedding: fixed (V, D) cost embedding (None: the ``classifier`` input of each call).
        mix: ``dynamic`` (CE plus DEMD rescaled to CE's size) or ``none`` (DEMD alone).
        max_ratio: cap on ``CE / DEMD`` in the dynamic mix (> 0; None: no cap).
        ignore_index: target id of the items to ignore.
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Ren, Wu, Zhu, "EMO: Earth Mover Distance Optimization for Auto-Regressive Language
    Modeling" (arXiv:2310.04691), ICLR 2024.
    """

    citation = (
        "EMO: Earth Mover Distance Optimization for Auto-Regressive Language Modeling",
        "arXiv:2310.04691",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        embedding: torch.Tensor | None = None,
        mix: str = "dynamic",
        max_ratio: float | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if embedding is not None:
            if (
                not isinstance(embedding, torch.Tensor)
                or not embedding.is_floating_point()
                or embedding.dim() != 2
            ):
                raise BadParameterError("embedding must be a floating (V, D) tensor or None")
            embedding = unit_rows(embedding.detach().to(compute_dtype(embedding)).clone())
        self.register_buffer("embedding", embedding)
        self.mix = choice("mix", mix, MIXES)
        self.max_ratio = (
            None
            if max_ratio is None
            else check_number("max_ratio", max_ratio, low=0.0, low_open=True)
        )
        self.ignore_index = check_index("ignore_index", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        classifier: torch.Tensor | None = None,
    ) -> torch.Tensor:
        embedding = self.embedding if self.embedding is not None else classifier
        if embedding is None:
            raise BadInputError(
                f"{_WHO} needs a cost embedding: pass the input 'classifier' (V, D) or build the "
                "loss with embedding=<(V, D) tensor>"
            )
        if isinstance(embedding, torch.Tensor):
            check_finite_values(embedding, _WHO, "classifier (the cost embedding)")
        return emo_loss(
            logits,
            targets,
            embedding,
            mix=self.mix,
            max_ratio=self.max_ratio,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        fixed = None if self.embedding is None else tuple(self.embedding.shape)
        return f"embedding={fixed}, mix={self.mix!r}, max_ratio={self.max_ratio}, reduction={self.reduction!r}"
