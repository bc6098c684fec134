"""``pld``: Plackett-Luce Distillation."""

from __future__ import annotations

import torch

from . import _params as P
from ._inputs import check_student_finite
from ._labelled import LabelledLoss
from ._teacher import Teacher, teacher_tail_logmass

_NEG_INF = float("-inf")


def plackett_luce_nll(
    s: torch.Tensor,
    head_ids: torch.Tensor,
    alpha: torch.Tensor,
    kept: torch.Tensor | None = None,
    covers_all: bool = False,
) -> torch.Tensor:
    """Weighted Plackett-Luce negative log-likelihood of a (partial) ranking, per row.

    ``head_ids`` (N, H) are the first H classes of the ranking in order, ``alpha`` (N, H) their
    position weights, ``kept`` (N, H) which head entries count (a repeated id is dropped), and
    the classes not in the head form the unranked tail::

        nll = sum_{k <= H, kept} alpha_k * (log sum_{l >= k} exp(s_{pi_l}) - s_{pi_k})

    where the inner sum runs over the head from position k on plus the whole tail. One reverse
    cumulative log-sum-exp over the head, plus one masked log-sum-exp for the tail:
    O(C + H log H) per row after the caller's sort. ``covers_all=True`` says the head is a full
    permutation of the C classes (no tail).
    """
    s_head = s.gather(-1, head_ids)
    if kept is not None:
        # A finite stand-in (not -inf) keeps logcumsumexp's backward free of NaN.
        s_seq = torch.where(kept, s_head, torch.full_like(s_head, torch.finfo(s.dtype).min / 4))
    else:
        s_seq = s_head
    suffix = torch.flip(torch.logcumsumexp(torch.flip(s_seq, [-1]), -1), [-1])
    if not covers_all:
        counts = torch.zeros_like(s, dtype=torch.int32)
        ones = (
            torch.ones_like(head_ids, dtype=torch.int32) if kept is None else kept.to(torch.int32)
        )
        in_head = counts.scatter_add(-1, head_ids, ones) > 0
        tail = torch.logsumexp(s.masked_fill(in_head, _NEG_INF), -1, keepdim=True)
        suffix = torch.logaddexp(suffix, tail)
    terms = alpha * (suffix - s_head)
    if kept is not None:
        terms = torch.where(kept, terms, torch.zeros_like(terms))
    return terms.sum(-1)


class PLD(LabelledLoss):
    """Plackett-Luce distillation: teacher-confidence-weighted list-wise NLL of the teacher-optimal ranking.

    The teacher-optimal permutation ``pi*`` puts the true label ``y`` first, then the other
    classes by descending teacher logit. Each position is weighted by the teacher's softmax
    probability of the class placed there, ``alpha_k = softmax(t / T)[pi*_k]``, and the student's
    (untempered) logits ``s`` score the ranking under the Plackett-Luce model::

        pld = sum_{k=1}^{C} alpha_k * (log sum_{l=k}^{C} exp(s_{pi*_l}) - s_{pi*_k})

    (Appendix A and C of the paper; the temperature acts on the teacher's weights only.) With
    ``alpha = (1, 0, ..., 0)`` it is cross-entropy on ``y``; it is convex in ``s`` and invariant
    to adding a constant to ``s``. Computed with one sort and a reverse cumulative log-sum-exp,
    O(C log C) per row.

    ``top_k`` truncates the list after the label and the ``top_k`` highest-ranked other classes
    (the rest stays in every log-sum-exp as the unranked tail, but gets no position of its own):
    the top-K partial Plackett-Luce likelihood, for LLM vocabularies; ``top_k >= C - 1`` is the
    full loss. With a top-k teacher (``teacher_topk_ids`` + ``teacher_topk_logprobs``) the list is
    the label then the given ids, and the weights are the tempered top-k probabilities (``tail``:
    ``"renormalise"`` over the k, or ``"bucket"`` with the tail as an extra cell); a label outside
    the top-k gets weight 0 since the teacher's probability for it is not known.

    ``targets`` are required.

    Args:
        temperature: temperature of the teacher's weights (> 0).
        top_k: rank only the label and the ``top_k`` highest other classes (None: all).
        tail: tail of a top-k teacher, ``"bucket"`` (one extra cell) or ``"renormalise"``.
        ignore_index: rows whose ``targets`` equal it are masked.
        reduction: ``"mean"`` over kept rows (or ``num_items`` when given), ``"sum"`` or ``"none"``.
        vocab_align: ``"error"`` or ``"truncate"`` (cut both sides to the common vocabulary).

    Citation: Bassam, Zhu, Bian, "PLD: A Choice-Theoretic List-Wise Knowledge Distillation",
    arXiv:2506.12542.
    """

    citation = ("PLD: A Choice-Theoretic List-Wise Knowledge Distillation", "arXiv:2506.12542")
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int | None = None,
        tail: str = "bucket",
        ignore_index: int = -100,
        reduction: str = "mean",
        vocab_align: str = "error",
    ) -> None:
        super().__init__()
        self.temperature = P.temperature(temperature)
        self.top_k = P.top_k(top_k)
        self.tail = P.tail(tail)
        self.ignore_index = P.ignore_index(ignore_index)
        self.reduction = P.reduction(reduction)
        self.vocab_align = P.vocab_align(vocab_align)

    def rows(self, teacher: Teacher, y: torch.Tensor) -> torch.Tensor:
        check_student_finite("logits", teacher.student)
        if teacher.logits is not None:
            return self._full_teacher(teacher.student, teacher.logits, y)
        assert teacher.ids is not None and teacher.logprobs is not None
        return self._topk_teacher(teacher.student, teacher.ids, teacher.logprobs, y)

    def _full_teacher(self, s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = s.shape[-1]
        weights = torch.softmax(t / self.temperature, -1)
        ranked = t.scatter(-1, y[:, None], float("inf"))  # the label first, then by teacher logit
        if self.top_k is None or self.top_k >= c - 1:
            order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices
            return plackett_luce_nll(s, order, weights.gather(-1, order), covers_all=True)
        head = torch.topk(ranked, self.top_k + 1, -1, sorted=True).indices
        return plackett_luce_nll(s, head, weights.gather(-1, head))

    def _topk_teacher(
        self, s: torch.Tensor, ids: torch.Tensor, lp: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        lp, perm = torch.sort(lp, dim=-1, descending=True, stable=True)
        ids = ids.gather(-1, perm)
        k, c = ids.shape[-1], s.shape[-1]
        if self.tail == "renormalise" or k == c:
            w = torch.softmax(lp / self.temperature, -1)
        else:
            p_tail = teacher_tail_logmass(lp).to(s.dtype)[:, None]
            w = torch.softmax(torch.cat([lp, p_tail], -1) / self.temperature, -1)[:, :k]
        dup = ids == y[:, None]
        w_y = (w * dup).sum(-1, keepdim=True)
        head = torch.cat([y[:, None], ids], -1)
        alpha = torch.cat([w_y, w.masked_fill(dup, 0.0)], -1)
        kept = torch.cat([torch.ones_like(dup[:, :1]), ~dup], -1)
        if self.top_k is not None:
            rank = torch.cumsum(kept[:, 1:].to(torch.int64), -1)
            kept[:, 1:] &= rank <= self.top_k
        return plackett_luce_nll(s, head, alpha, kept)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, top_k={self.top_k}"
