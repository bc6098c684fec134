"""``linear-jsd``: fused linear generalized-JSD distillation (no logit matrix materialised)."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from . import _common as C
from ._linear_chunked import Spec, linear_distill


class LinearJSD(Loss):
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

    Parameters: ``beta`` in [0, 1] (default 0.5), ``temperature`` (> 0, default 1.0),
    ``normalize`` (default True), ``softcap`` (None or > 0), ``chunk_size`` (default 256),
    ``ignore_index`` (-100), ``reduction``, ``vocab_align``.

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
        chunk_size: int = 256,
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.beta = C.check_unit_interval("beta", beta)
        self.temperature = C.check_positive("temperature", temperature)
        self.normalize = bool(normalize)
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
            kind="jsd",
            temperature=self.temperature,
            softcap=self.softcap,
            beta=self.beta,
            normalize=self.normalize,
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
            f"beta={self.beta}, temperature={self.temperature}, normalize={self.normalize}, "
            f"softcap={self.softcap}, chunk_size={self.chunk_size}"
        )
