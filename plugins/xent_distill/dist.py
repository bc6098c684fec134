"""``dist``: DIST, distillation from a stronger teacher by Pearson correlation."""

from __future__ import annotations

import torch

from xent_core import BadParameterError
from xent_core.base_loss import Loss

from . import _params as P
from ._inputs import as_rows, check_num_items, check_student_finite, compute_dtype, target_mask
from ._reduce import denominator
from ._support import teacher_logprobs_full
from ._teacher import read_teacher
from .functional import pearson_columns, pearson_rows


class DIST(Loss):
    """DIST: inter-class (per token) and intra-class (per class) Pearson correlation distillation.

    With ``P = softmax(t / T)`` and ``Q = softmax(s / T)`` the ``(B, C)`` teacher and student
    probability matrices of the kept tokens and ``rho`` the Pearson correlation::

        inter = sum_i (1 - rho(Q[i, :], P[i, :]))            over tokens (rows)
        intra = mean_c (1 - rho(Q[:, c], P[:, c]))           over classes (columns)
        dist  = T^2 * (beta * inter + gamma * B * intra)     for reduction="sum"
        mean  = that sum / B (or / num_items)  =  T^2 (beta * mean_i(...) + gamma * intra)

    The intra-class term couples the tokens of a batch, so DIST has no per-token value:
    ``reduction`` is ``"mean"`` (the paper's loss) or ``"sum"``; ``"none"`` is refused. A top-k
    teacher is expanded to all C classes (``"renormalise"``: zero outside the top-k;
    ``"bucket"``: the tail mass spread uniformly), since the intra-class term needs one class axis.

    Args:
        beta: weight of the inter-class (per token) term (>= 0).
        gamma: weight of the intra-class (per class) term (>= 0).
        temperature: softmax temperature T of teacher and student (> 0).
        scale_by_t2: multiply by ``T^2``, keeping the gradient scale independent of T.
        tail: tail of a top-k teacher, ``"bucket"`` (one extra cell) or ``"renormalise"``.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` (the paper's loss) or ``"sum"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).

    Citation: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher",
    arXiv:2205.10536.
    """

    citation = ("Knowledge Distillation from A Stronger Teacher", "arXiv:2205.10536")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        scale_by_t2: bool = True,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.beta = P.weight("beta", beta)
        self.gamma = P.weight("gamma", gamma)
        self.temperature = P.temperature(temperature)
        self.scale_by_t2 = P.flag("scale_by_t2", scale_by_t2)
        self.tail = P.tail(tail)
        self.ignore_index = P.ignore_index(ignore_index)
        if reduction == "none":
            raise BadParameterError(
                "dist couples the tokens of a batch through its intra-class term, so it has no "
                "per-token value: use reduction='mean' or 'sum'"
            )
        self.reduction = P.reduction(reduction, ("mean", "sum"))
        self.vocab_align = P.vocab_align(vocab_align)

    def forward(
        self,
        logits: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        teacher_topk_ids: torch.Tensor | None = None,
        teacher_topk_logprobs: torch.Tensor | None = None,
        num_items: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        s, lead = as_rows("logits", logits)
        check_student_finite("logits", s)
        s = s.to(compute_dtype(s))
        valid = target_mask(targets, lead, self.ignore_index, s.shape[-1], s.device)
        check_num_items(num_items)
        teacher = read_teacher(
            s,
            teacher_logits,
            teacher_topk_ids,
            teacher_topk_logprobs,
            lead=lead,
            vocab_align=self.vocab_align,
        )
        s = teacher.student
        t = self.temperature
        if teacher.logits is not None:
            p = torch.softmax(teacher.logits / t if t != 1.0 else teacher.logits, -1)
        else:
            p = torch.exp(teacher_logprobs_full(teacher, temperature=t, tail=self.tail))
        q = torch.softmax(s / t if t != 1.0 else s, -1)  # no (N, C) division at T = 1
        if valid is None:  # every row counts: the plain correlations
            b = torch.tensor(float(q.shape[0]), dtype=q.dtype, device=q.device)
            inter = (1.0 - pearson_rows(q, p)).sum()
            intra = (1.0 - pearson_rows(q, p, dim=0)).mean()
        else:  # kept rows by weight, not by indexing: no data-dependent shape (torch.compile)
            keep = valid.to(q.dtype)
            b = keep.sum()
            inter = ((1.0 - pearson_rows(q, p)) * keep).sum()
            intra = (1.0 - pearson_columns(q, p, keep)).mean()
        scale = self.temperature**2 if self.scale_by_t2 else 1.0
        total = scale * (self.beta * inter + self.gamma * b * intra)
        if valid is not None:  # nothing kept: 0, still in the graph
            total = torch.where(b > 0, total, s.sum() * 0.0)
        if self.reduction == "sum":
            return total
        return total / denominator(valid, s.shape[0], num_items, total)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, temperature={self.temperature}"
