"""``linear-kd``: fused linear knowledge distillation (no logit matrix materialised)."""

from __future__ import annotations

from . import _params as P
from ._divergence import LinearDivergenceLoss
from ._linear_chunked import Spec


class LinearKD(LinearDivergenceLoss):
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

    The shared parameters (``temperature``, ``softcap``, ``chunk_size``, ``ignore_index``,
    ``reduction``, ``vocab_align``, ``shift``) are documented on ``LinearDivergenceLoss``.

    Args:
        scale_by_t2: multiply by ``T^2``, keeping the gradient scale independent of T.

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
        chunk_size: int | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
        shift: bool = False,
    ) -> None:
        super().__init__(
            temperature, softcap, chunk_size, ignore_index, reduction, vocab_align, shift
        )
        self.scale_by_t2 = P.flag("scale_by_t2", scale_by_t2)

    def spec(self) -> Spec:
        return Spec(
            kind="kd",
            temperature=self.temperature,
            softcap=self.softcap,
            scale=self.temperature**2 if self.scale_by_t2 else 1.0,
            chunk_size=self.chunk_size,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, scale_by_t2={self.scale_by_t2}, "
            f"softcap={self.softcap}, chunk_size={self.chunk_size}"
        )
