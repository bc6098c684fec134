"""``skew-kl``: skew forward KL distillation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from . import _params as P
from ._divergence import DivergenceLoss
from ._fused import Rule, mixture_rule
from .functional import skew_forward_kl


class SkewKL(DivergenceLoss):
    """Skew KL distillation: KL(p_teacher || alpha p + (1 - alpha) q_student); alpha=0 is forward KL.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        skew_kl = sum_c p_c (log p_c - log(alpha p_c + (1 - alpha) q_c))

    Mixing a little of the teacher into the student bounds the log-ratio by ``-log alpha``, which
    keeps the gradients finite where the student puts almost no mass.

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``DivergenceLoss``.

    Args:
        alpha: weight of the mixed-in distribution, in [0, 1].

    Citation: Ko, Kim, Chen, Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
    Models", arXiv:2402.03898.
    """

    citation = (
        "DistiLLM: Towards Streamlined Distillation for Large Language Models",
        "arXiv:2402.03898",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        alpha: float = 0.1,
        temperature: float = 1.0,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__(temperature, tail, ignore_index, reduction, vocab_align)
        self.alpha = P.mixture("alpha", alpha)

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return partial(skew_forward_kl, alpha=self.alpha)

    def rule(self) -> Rule:
        return mixture_rule(self.alpha, 1.0, 0.0, self.temperature)  # m = alpha p + (1-alpha) q

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}"
