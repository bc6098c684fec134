"""``skew-reverse-kl``: skew reverse KL distillation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from . import _params as P
from ._divergence import DivergenceLoss
from ._fused import Rule, mixture_rule
from .functional import skew_reverse_kl


class SkewReverseKL(DivergenceLoss):
    """Skew reverse KL distillation: KL(q_student || alpha q + (1 - alpha) p_teacher); alpha=0 is reverse KL.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        skew_reverse_kl = sum_c q_c (log q_c - log(alpha q_c + (1 - alpha) p_c))

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
        return partial(skew_reverse_kl, alpha=self.alpha)

    def rule(self) -> Rule:
        return mixture_rule(
            1.0 - self.alpha, 0.0, 1.0, self.temperature
        )  # m = (1-alpha) p + alpha q

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}"
