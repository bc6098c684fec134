"""``dkd``: Decoupled Knowledge Distillation."""

from __future__ import annotations

import torch

from . import _params as P
from ._fused import Rule, divergence_rows
from ._labelled import LabelledLoss
from ._support import soft_pair
from ._teacher import Teacher
from .functional import decoupled_kl


class DKD(LabelledLoss):
    """Decoupled knowledge distillation: T^2 * (alpha * TCKD + beta * NCKD).

    Per token, with ``p = softmax(t / T)``, ``q = softmax(s / T)`` and target class ``y``::

        TCKD = KL((p_y, 1 - p_y) || (q_y, 1 - q_y))                 target vs. non-target
        NCKD = KL(p_hat || q_hat),  p_hat_c = p_c / (1 - p_y), c != y  among non-targets
        dkd  = T^2 * (alpha * TCKD + beta * NCKD)

    Classical KD is the special case ``KL(p || q) = TCKD + (1 - p_y) * NCKD``; DKD decouples the
    two weights. With a top-k teacher the same formula is applied to the coarsened distributions
    (see ``tail``), the target's cell being the one that contains ``y`` (for ``"renormalise"``
    and ``y`` outside the top-k: ``p_y = q_y = 0``, so only NCKD remains).

    ``targets`` are required; the defaults are the paper's CIFAR-100 settings.

    Args:
        alpha: weight of the target-class term TCKD (>= 0).
        beta: weight of the non-target term NCKD (>= 0).
        temperature: softmax temperature T of teacher and student (> 0).
        scale_by_t2: multiply by ``T^2``, keeping the gradient scale independent of T.
        tail: tail of a top-k teacher, ``"bucket"`` (one extra cell) or ``"renormalise"``.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).

    Citation: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", arXiv:2203.08679.
    """

    citation = ("Decoupled Knowledge Distillation", "arXiv:2203.08679")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        scale_by_t2: bool = True,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.alpha = P.weight("alpha", alpha)
        self.beta = P.weight("beta", beta)
        self.temperature = P.temperature(temperature)
        self.scale_by_t2 = P.flag("scale_by_t2", scale_by_t2)
        self.tail = P.tail(tail)
        self.ignore_index = P.ignore_index(ignore_index)
        self.reduction = P.reduction(reduction)
        self.vocab_align = P.vocab_align(vocab_align)

    def rows(self, teacher: Teacher, y: torch.Tensor) -> torch.Tensor:
        scale = self.temperature**2 if self.scale_by_t2 else 1.0
        if teacher.logits is not None and not torch.compiler.is_compiling():
            rule = Rule("dkd", self.temperature, scale, a=self.alpha, b=self.beta)
            return divergence_rows(teacher.student, teacher.logits, rule, self._parts, y)
        pair = soft_pair(teacher, temperature=self.temperature, tail=self.tail, y=y)
        assert pair.target_cell is not None
        return scale * self._parts(pair.teacher, pair.student, pair.target_cell)

    def _parts(self, lp: torch.Tensor, lq: torch.Tensor, cell: torch.Tensor | None) -> torch.Tensor:
        """``alpha * TCKD + beta * NCKD`` per row by the general masked formulas."""
        assert cell is not None
        tckd, nckd = decoupled_kl(lp, lq, cell)
        return self.alpha * tckd + self.beta * nckd

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}"
