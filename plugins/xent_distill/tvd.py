"""``tvd``: total variation distance distillation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._divergence import DivergenceLoss
from ._fused import Rule
from .functional import total_variation


class TVD(DivergenceLoss):
    """Total variation distance distillation: (1/2) sum_c |p_teacher - q_student| at temperature T.

    Per token, with ``p = softmax(t / T)`` and ``q = softmax(s / T)``::

        tvd = 0.5 * sum_c |p_c - q_c|          (in [0, 1])

    The shared parameters (``temperature``, ``tail``, ``ignore_index``, ``reduction``,
    ``vocab_align``) are documented on ``DivergenceLoss``.

    Citation: Wen, Li, Du, Mou, "f-Divergence Minimization for Sequence-Level Knowledge
    Distillation", arXiv:2307.15190.
    """

    citation = (
        "f-Divergence Minimization for Sequence-Level Knowledge Distillation",
        "arXiv:2307.15190",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def row_divergence(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return total_variation

    def rule(self) -> Rule:
        return Rule("tvd", self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
