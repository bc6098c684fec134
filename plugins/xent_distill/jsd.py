"""``jsd``: generalized Jensen-Shannon distillation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from . import _params as P
from ._divergence import DivergenceLoss
from ._fused import Rule, jsd_rule
from .functional import generalized_jsd


class JSD(DivergenceLoss):
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

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``DivergenceLoss``.

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
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__(temperature, tail, ignore_index, reduction, vocab_align)
        self.beta = P.mixture("beta", beta)
        self.normalize = P.flag("normalize", normalize)

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return partial(generalized_jsd, beta=self.beta, normalize=self.normalize)

    def rule(self) -> Rule:
        return jsd_rule(self.beta, self.normalize, self.temperature)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, temperature={self.temperature}, normalize={self.normalize}"
