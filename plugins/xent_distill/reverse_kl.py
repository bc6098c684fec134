"""``reverse-kl``: reverse Kullback-Leibler distillation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._divergence import DivergenceLoss
from ._fused import Rule
from .functional import reverse_kl


class ReverseKL(DivergenceLoss):
    """Reverse KL distillation: KL(q_student || p_teacher) at temperature T (mode-seeking).

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        reverse_kl = sum_c q_c (log q_c - log p_c)

    No ``T^2`` factor (weight the term in a stack if you want one). A class the teacher rules out
    (probability 0, e.g. ``-inf`` logits) where the student keeps mass gives ``+inf``, the true
    value. Teacher forms, ``tail``, ``ignore_index``, ``reduction``, ``num_items`` and
    ``vocab_align`` as in ``kd``.

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``DivergenceLoss``.

    Citation: Gu, Dong, Wei, Huang, "MiniLLM: Knowledge Distillation of Large Language Models",
    arXiv:2306.08543.
    """

    citation = ("MiniLLM: Knowledge Distillation of Large Language Models", "arXiv:2306.08543")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return reverse_kl

    def rule(self) -> Rule:
        return Rule("reverse-kl", self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
