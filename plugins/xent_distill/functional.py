"""Per-row divergences between a teacher and a student given as log-probabilities.

Every function takes ``lp`` (teacher log-probabilities) and ``lq`` (student log-probabilities) of
shape ``(N, M)`` over the same support and returns an ``(N,)`` tensor, one divergence per row, in
nats. Entries equal to ``-inf`` are classes with probability zero: ``0 * log 0`` counts as 0, and
a class the student rules out but the teacher supports gives ``+inf`` in the directions where that
is the true value (forward KL), never NaN.

Conventions (``p`` = teacher, ``q`` = student):

- ``forward_kl(lp, lq)``      KL(p || q) = sum_c p_c (log p_c - log q_c)
- ``reverse_kl(lp, lq)``      KL(q || p)
- ``generalized_jsd``         JSD_beta = beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q;
                              with ``normalize=True`` divided by beta (1 - beta), so that it tends to
                              KL(p || q) as beta -> 0 and to KL(q || p) as beta -> 1 (the end points
                              are those limits exactly).
- ``skew_forward_kl``         KL(p || alpha p + (1 - alpha) q)
- ``skew_reverse_kl``         KL(q || alpha q + (1 - alpha) p)
- ``total_variation``         (1/2) sum_c |p_c - q_c|
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "forward_kl",
    "generalized_jsd",
    "log1mexp",
    "log_mix_ratio",
    "reverse_kl",
    "skew_forward_kl",
    "skew_reverse_kl",
    "total_variation",
]

_NEG_INF = float("-inf")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (Maechler's two branches).

    ``log(-expm1(x))`` above ``-log 2``, ``log1p(-exp(x))`` below. Edges: ``-inf`` gives 0, ``0``
    gives ``-inf``, ``x > 0`` and NaN give NaN (undefined). Each branch sees a clamped copy that
    stays finite where the other is taken, so the gradient never meets ``0 * inf``. The same
    definition and edges as ``xent_losses``' (tested side by side).
    """
    half = -math.log(2.0)
    near = torch.log(-torch.expm1(x.clamp(min=half)))
    far = torch.log1p(-torch.exp(x.clamp(max=half)))
    return torch.where(x > half, near, far)


def log_mix_ratio(d: torch.Tensor, w: float) -> torch.Tensor:
    """``log((1 - w) + w * exp(d))`` for ``w`` in [0, 1] and ``d`` in [-inf, inf].

    It is the log-ratio of a mixture to one of its parts (``d`` is the log-ratio of the other part
    to that one). Near ``w = 0`` it is computed as ``log1p(w * expm1(d))``, which keeps full
    relative precision, so dividing by ``w`` stays accurate; once ``w * exp(d) > 1`` there is no
    cancellation and ``logaddexp`` is used. Both branches are finite where they are not selected,
    so autograd never sees ``0 * inf``.
    """
    if w <= 0.0:
        return torch.zeros_like(d)
    if w >= 1.0:
        return d
    cap = math.log(1.0 / w)  # w * expm1(d) < 1 for d <= cap
    near = torch.log1p(w * torch.expm1(d.clamp(max=cap)))
    far = torch.logaddexp(torch.full_like(d, math.log1p(-w)), math.log(w) + d.clamp(min=cap))
    return torch.where(d <= cap, near, far)


def _absent(x: torch.Tensor) -> torch.Tensor:
    return x == _NEG_INF


def attached_zero(lq: torch.Tensor) -> torch.Tensor:
    """Per-row zeros that stay in the graph of ``lq`` (zero gradient, no NaN from ``-inf``)."""
    first = lq[..., 0]
    return torch.where(torch.isfinite(first), first * 0.0, torch.zeros_like(first))


def forward_kl(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row."""
    if not lp.requires_grad and not torch.compiler.is_compiling():
        # Constant p (a detached teacher): sum p log p needs no graph, and the cross term is one
        # product whose backward keeps only p. Rows where 0 * (-inf) made a NaN take the masked
        # path. (Compiled code takes the masked path at once: inductor fuses it, and the choice
        # would read a value on the host.)
        p = torch.exp(lp)
        cross = (p * lq).sum(-1)
        if not bool(torch.isnan(cross).any()):
            with torch.no_grad():  # 0 * (-inf) = NaN only where p = 0: those terms are 0
                neg_entropy = (p * lp).nan_to_num_(nan=0.0).sum(-1)
            return neg_entropy - cross
    zero_p = _absent(lp)
    lp_s = lp.masked_fill(zero_p, 0.0)
    lq_s = lq.masked_fill(zero_p, 0.0)
    terms = torch.exp(lp_s) * (lp_s - lq_s)
    return terms.masked_fill(zero_p, 0.0).sum(-1)


def reverse_kl(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per row."""
    return forward_kl(lq, lp)


def _mixture_terms(
    lp: torch.Tensor, lq: torch.Tensor, weight_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(p || m)`` and ``KL(q || m)`` per row for ``m = weight_p * p + (1 - weight_p) * q``."""
    zero_p, zero_q = _absent(lp), _absent(lq)
    both = zero_p & zero_q
    d = (lp - lq).masked_fill(both, 0.0)  # log p/q; +-inf where exactly one side is zero
    # log(m/q) = log((1 - w) + w p/q) with w = weight_p; log(m/p) likewise with the roles swapped.
    log_m_over_q = log_mix_ratio(d.masked_fill(zero_q, 0.0), weight_p)
    log_m_over_p = log_mix_ratio((-d).masked_fill(zero_p, 0.0), 1.0 - weight_p)
    kl_p_m = -(torch.exp(lp.masked_fill(zero_p, 0.0)) * log_m_over_p).masked_fill(zero_p, 0.0)
    kl_q_m = -(torch.exp(lq.masked_fill(zero_q, 0.0)) * log_m_over_q).masked_fill(zero_q, 0.0)
    return kl_p_m.sum(-1), kl_q_m.sum(-1)


def generalized_jsd(
    lp: torch.Tensor, lq: torch.Tensor, beta: float = 0.5, normalize: bool = True
) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence per row (see the module docstring for the convention)."""
    if beta <= 0.0:
        return forward_kl(lp, lq) if normalize else attached_zero(lq)
    if beta >= 1.0:
        return reverse_kl(lp, lq) if normalize else attached_zero(lq)
    kl_p_m, kl_q_m = _mixture_terms(lp, lq, beta)
    if normalize:
        return kl_p_m / (1.0 - beta) + kl_q_m / beta
    return beta * kl_p_m + (1.0 - beta) * kl_q_m


def skew_forward_kl(lp: torch.Tensor, lq: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """KL(p || alpha p + (1 - alpha) q) per row; ``alpha = 0`` is KL(p || q)."""
    if alpha <= 0.0:
        return forward_kl(lp, lq)
    if alpha >= 1.0:  # KL(p || p)
        return attached_zero(lq)
    return _mixture_terms(lp, lq, alpha)[0]


def skew_reverse_kl(lp: torch.Tensor, lq: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """KL(q || alpha q + (1 - alpha) p) per row; ``alpha = 0`` is KL(q || p)."""
    if alpha <= 0.0:
        return reverse_kl(lp, lq)
    if alpha >= 1.0:  # KL(q || q)
        return attached_zero(lq)
    return _mixture_terms(lp, lq, 1.0 - alpha)[1]


def total_variation(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """(1/2) sum_c |p_c - q_c| per row."""
    return 0.5 * (torch.exp(lp) - torch.exp(lq)).abs().sum(-1)


def decoupled_kl(
    lp: torch.Tensor, lq: torch.Tensor, target_cell: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """DKD's two parts per row: ``(TCKD, NCKD)``.

    ``TCKD = KL(b_p || b_q)`` with the binary split ``b = (p_y, 1 - p_y)`` of the target cell
    against the rest, and ``NCKD = KL(p_hat || q_hat)`` between the distributions renormalised over
    the non-target cells, so that ``KL(p || q) = TCKD + (1 - p_y) * NCKD`` exactly.
    ``target_cell`` is ``(N,)`` int64; ``-1`` means the support does not contain the target
    (then ``p_y = q_y = 0``: TCKD is 0 and NCKD is the whole KL).
    """
    present = target_cell >= 0
    idx = target_cell.clamp(min=0)[:, None]
    neg_inf = torch.full_like(lp[:, 0], _NEG_INF)
    lp_y = torch.where(present, lp.gather(-1, idx).squeeze(-1), neg_inf)
    lq_y = torch.where(present, lq.gather(-1, idx).squeeze(-1), neg_inf)
    is_y = torch.zeros_like(lp, dtype=torch.bool).scatter(-1, idx, present[:, None])

    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-target log-mass ``log(1 - x_y)`` as a log-sum-exp of the other cells (exact even
        when ``x_y`` rounds to 1, where ``log1mexp`` would give -inf), and the renormalised rest."""
        rest = x.masked_fill(is_y, _NEG_INF)
        empty = (rest == _NEG_INF).all(-1, keepdim=True)
        lse = torch.logsumexp(rest.masked_fill(empty, 0.0), -1, keepdim=True)
        return lse.masked_fill(empty, _NEG_INF).squeeze(-1), rest - lse.masked_fill(empty, 0.0)

    lp_rest, lp_hat = split(lp)
    lq_rest, lq_hat = split(lq)
    tckd = forward_kl(torch.stack([lp_y, lp_rest], -1), torch.stack([lq_y, lq_rest], -1))
    nckd = forward_kl(lp_hat, lq_hat)
    return tckd, nckd


def pearson_columns(
    a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Pearson correlation of each column of ``a`` with that of ``b`` over the rows where
    ``keep`` (N,) is 1 (rows with 0 are left out; eps in the denominator)."""
    n = keep.sum().clamp(min=1.0)
    w = keep[:, None]
    a_c = (a - (a * w).sum(0) / n) * w
    b_c = (b - (b * w).sum(0) / n) * w
    return (a_c * b_c).sum(0) / (a_c.norm(dim=0) * b_c.norm(dim=0) + eps)


def pearson_rows(
    a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8, dim: int = -1
) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (eps in the
    denominator); ``dim=0`` correlates the columns instead (no transposed copy)."""
    a_c = a - a.mean(dim, keepdim=True)
    b_c = b - b.mean(dim, keepdim=True)
    return (a_c * b_c).sum(dim) / (a_c.norm(dim=dim) * b_c.norm(dim=dim) + eps)
