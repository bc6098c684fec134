"""``jsd``: generalized Jensen-Shannon distillation."""

from __future__ import annotations

from functools import partial

import torch

from xent_core.base_loss import Loss

from . import _common as C
from .functional import generalized_jsd


class JSD(Loss):
    """Generalized Jensen-Shannon distillation with weight beta; beta=0 / 1 are forward / reverse KL.

    Per token, with ``p = softmax(t / T)`` (teacher), ``q = softmax(s / T)`` (student) and the
    mixture ``m = beta p + (1 - beta) q``::

        JSD_beta(p, q) = beta KL(p || m) + (1 - beta) KL(q || m)
        jsd            = JSD_beta(p, q) / (beta (1 - beta))        (normalize=True, default)

    Convention: as beta -> 0, ``JSD_beta / beta -> KL(p || q)`` (forward KL, as in ``kd`` without
    ``T^2``) and as beta -> 1, ``JSD_beta / (1 - beta) -> KL(q || p)`` (reverse KL), so the
    normalised value is continuous on [0, 1] and its end points are exactly those limits. At
    beta = 0.5 it is 4 JSD(p, q), symmetric in p and q. ``normalize=False`` returns the raw
    ``JSD_beta`` of the GKD paper (which tends to 0 at both ends). The computation keeps full
    precision near the ends (``log1p``/``expm1`` of the mixture ratio).

    Parameters: ``beta`` in [0, 1] (default 0.5), ``temperature`` (> 0, default 1.0),
    ``normalize`` (default True), ``tail``, ``ignore_index``, ``reduction``, ``vocab_align``
    (as in ``kd``).

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
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.beta = C.check_unit_interval("beta", beta)
        self.temperature = C.check_positive("temperature", temperature)
        self.normalize = bool(normalize)
        self.tail = C.check_tail(tail)
        self.ignore_index = int(ignore_index)
        self.reduction = C.check_choice("reduction", reduction, C.REDUCTIONS)
        self.vocab_align = C.check_choice("vocab_align", vocab_align, C.VOCAB_ALIGN)

    def forward(
        self,
        logits: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        teacher_topk_ids: torch.Tensor | None = None,
        teacher_topk_logprobs: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        return C.divergence_loss(
            partial(generalized_jsd, beta=self.beta, normalize=self.normalize),
            logits,
            teacher_logits,
            teacher_topk_ids,
            teacher_topk_logprobs,
            targets,
            num_items,
            temperature=self.temperature,
            tail=self.tail,
            vocab_align=self.vocab_align,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, temperature={self.temperature}, normalize={self.normalize}"
