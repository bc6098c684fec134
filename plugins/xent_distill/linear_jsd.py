"""``linear-jsd``: fused linear generalized-JSD distillation (no logit matrix materialised)."""

from __future__ import annotations

from . import _params as P
from ._divergence import LinearDivergenceLoss
from ._linear_chunked import Spec


class LinearJSD(LinearDivergenceLoss):
    """Fused linear generalized JSD from student and teacher hidden states; never materialises the (N, V) logits.

    Per token ``i``, with student logits ``s_i = cap(h_i W^T + b)``, teacher logits
    ``t_i = cap(h^t_i W_t^T + b_t)``, ``p = softmax(t_i / T)``, ``q = softmax(s_i / T)`` and
    ``m = beta p + (1 - beta) q``::

        linear_jsd_i = (beta KL(p || m) + (1 - beta) KL(q || m)) / (beta (1 - beta))

    (``normalize=False`` drops the division), the same value and gradients as ``jsd`` on
    materialised logits, with the same convention: beta = 0 is KL(p || q), beta = 1 is
    KL(q || p), continuous in between. Chunked over tokens with a custom autograd function and
    closed-form gradients; the teacher side is never differentiated. ``ignore_index``,
    ``num_items``, ``softcap``, ``chunk_size`` and ``vocab_align`` as in ``linear-kd``.

    The shared parameters (``temperature``, ``softcap``, ``chunk_size``, ``ignore_index``,
    ``reduction``, ``vocab_align``, ``shift``) are documented on ``LinearDivergenceLoss``.

    Args:
        beta: mixture weight of the teacher in ``m``, in [0, 1].
        normalize: divide by ``beta (1 - beta)`` (continuous at both ends).

    Citation: Agarwal et al., "On-Policy Distillation of Language Models: Learning from
    Self-Generated Mistakes" (GKD), arXiv:2306.13649.
    """

    citation = (
        "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes",
        "arXiv:2306.13649",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        beta: float = 0.5,
        temperature: float = 1.0,
        normalize: bool = True,
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
        self.beta = P.mixture("beta", beta)
        self.normalize = P.flag("normalize", normalize)

    def spec(self) -> Spec:
        return Spec(
            kind="jsd",
            temperature=self.temperature,
            softcap=self.softcap,
            beta=self.beta,
            normalize=self.normalize,
            chunk_size=self.chunk_size,
        )

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, temperature={self.temperature}, normalize={self.normalize}, "
            f"softcap={self.softcap}, chunk_size={self.chunk_size}"
        )
