"""``linear-kd``: fused linear knowledge distillation (no logit matrix materialised)."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from . import _common as C
from ._linear_chunked import Spec, linear_distill


class LinearKD(Loss):
    """Fused linear KD from student and teacher hidden states; never materialises the (N, V) logits.

    Per token ``i``, with student logits ``s_i = cap(h_i W^T + b)`` and teacher logits
    ``t_i = cap(h^t_i W_t^T + b_t)``, ``cap(z) = c * tanh(z / c)`` when ``softcap=c`` is set::

        linear_kd_i = T^2 * KL(softmax(t_i / T) || softmax(s_i / T))     (T^2 if scale_by_t2)

    the same value and gradients as ``kd`` on materialised (soft-capped) logits. Tokens are
    processed ``chunk_size`` at a time by a custom autograd function with closed-form gradients:
    peak extra memory is a few ``(chunk_size, V)`` blocks instead of several ``(N, V)`` matrices.
    The teacher side (``teacher_hidden``, ``teacher_classifier``, ``teacher_bias``) is never
    differentiated. Rows whose ``targets`` equal ``ignore_index`` are skipped; ``mean`` divides by
    the kept rows or by ``num_items``. The student and teacher hidden sizes may differ; their
    vocabularies must match unless ``vocab_align="truncate"``.

    Parameters: ``temperature`` (> 0, default 1.0), ``scale_by_t2`` (default True), ``softcap``
    (None or > 0, both sides), ``chunk_size`` (tokens per block, default 256), ``ignore_index``
    (-100), ``reduction`` (``mean``, ``sum``, ``none``), ``vocab_align`` (``"error"`` or
    ``"truncate"``).

    Citation: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
    arXiv:1503.02531; chunked linear losses as in Wijmans et al., "Cut Your Losses in
    Large-Vocabulary Language Models", arXiv:2411.09009.
    """

    citation = (
        ("Distilling the Knowledge in a Neural Network", "arXiv:1503.02531"),
        ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        temperature: float = 1.0,
        scale_by_t2: bool = True,
        softcap: float | None = None,
        chunk_size: int = 256,
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.temperature = C.check_positive("temperature", temperature)
        self.scale_by_t2 = bool(scale_by_t2)
        self.softcap = C.check_softcap(softcap)
        self.chunk_size = C.check_int("chunk_size", chunk_size, 1)
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_choice("reduction", reduction, C.REDUCTIONS)
        self.vocab_align = C.check_choice("vocab_align", vocab_align, C.VOCAB_ALIGN)

    def forward(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        teacher_hidden: torch.Tensor,
        teacher_classifier: torch.Tensor,
        targets: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        teacher_bias: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        spec = Spec(
            kind="kd",
            temperature=self.temperature,
            softcap=self.softcap,
            scale=self.temperature**2 if self.scale_by_t2 else 1.0,
            chunk_size=self.chunk_size,
        )
        return linear_distill(
            spec,
            hidden,
            classifier,
            teacher_hidden,
            teacher_classifier,
            targets,
            bias,
            teacher_bias,
            num_items,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            vocab_align=self.vocab_align,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, scale_by_t2={self.scale_by_t2}, "
            f"softcap={self.softcap}, chunk_size={self.chunk_size}"
        )
