"""Independent float64 references for the distillation tests, written the slow obvious way."""

from __future__ import annotations

import math

import numpy as np
import torch


def probs(x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    z = x.double() / temperature
    e = torch.exp(z - z.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """sum p log(p / q) with 0 log 0 = 0."""
    live = p > 0
    ratio = torch.where(live, p, torch.ones_like(p)) / torch.where(live, q, torch.ones_like(q))
    return (p * torch.log(ratio)).sum(-1)


def jsd(p: torch.Tensor, q: torch.Tensor, beta: float, normalize: bool = True) -> torch.Tensor:
    m = beta * p + (1 - beta) * q
    raw = beta * kl(p, m) + (1 - beta) * kl(q, m)
    return raw / (beta * (1 - beta)) if normalize else raw


def skew_kl(p: torch.Tensor, q: torch.Tensor, alpha: float) -> torch.Tensor:
    return kl(p, alpha * p + (1 - alpha) * q)


def skew_reverse_kl(p: torch.Tensor, q: torch.Tensor, alpha: float) -> torch.Tensor:
    return kl(q, alpha * q + (1 - alpha) * p)


def tvd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p - q).abs().sum(-1)


def dkd(
    s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, alpha: float, beta: float, temperature: float
) -> torch.Tensor:
    """DKD as its authors compute it: binary split by masks, non-target KL with -1000 masking."""
    gt = torch.nn.functional.one_hot(y, s.shape[-1]).double()
    ps, pt = probs(s, temperature), probs(t, temperature)
    bs = torch.stack([(ps * gt).sum(-1), (ps * (1 - gt)).sum(-1)], -1)
    bt = torch.stack([(pt * gt).sum(-1), (pt * (1 - gt)).sum(-1)], -1)
    tckd = kl(bt, bs)
    ns = probs(s.double() / temperature - 1000.0 * gt)
    nt = probs(t.double() / temperature - 1000.0 * gt)
    nckd = kl(nt, ns)
    return temperature**2 * (alpha * tckd + beta * nckd)


def dist(s: torch.Tensor, t: torch.Tensor, beta: float, gamma: float, temperature: float) -> float:
    """DIST (mean over the batch) with numpy's Pearson correlation."""
    q = probs(s, temperature).detach().numpy()
    p = probs(t, temperature).detach().numpy()
    inter = np.mean([1 - np.corrcoef(q[i], p[i])[0, 1] for i in range(q.shape[0])])
    intra = np.mean([1 - np.corrcoef(q[:, c], p[:, c])[0, 1] for c in range(q.shape[1])])
    return temperature**2 * (beta * inter + gamma * intra)


def pld_slow(
    s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, temperature: float = 1.0, top_k=None
) -> torch.Tensor:
    """O(C^2) PLD per row: build pi* by hand, re-sum the remaining exponentials at every step."""
    out = []
    c = s.shape[-1]
    for i in range(s.shape[0]):
        label = int(y[i])
        others = sorted((j for j in range(c) if j != label), key=lambda j: -float(t[i, j]))
        pi = [label, *others]
        w = probs(t[i : i + 1], temperature)[0]
        positions = c if top_k is None else min(c, top_k + 1)
        total = 0.0
        for k in range(positions):
            rest = sum(math.exp(float(s[i, j])) for j in pi[k:])
            total += float(w[pi[k]]) * (math.log(rest) - float(s[i, pi[k]]))
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def coarsen(p: torch.Tensor, ids: torch.Tensor, tail: str) -> torch.Tensor:
    """The per-row support of a top-k teacher: the k classes (+ the rest as one bucket)."""
    top = p.gather(-1, ids)
    if tail == "renormalise":
        return top / top.sum(-1, keepdim=True)
    return torch.cat([top, 1 - top.sum(-1, keepdim=True)], -1)


def reduce(values: torch.Tensor, valid: torch.Tensor | None, reduction: str, num_items=None):
    if valid is not None:
        values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    n = num_items if num_items is not None else (valid.sum() if valid is not None else len(values))
    return values.sum() / max(float(n), 1.0)


def general_rows(loss, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A divergence loss's per-row values by its general masked formula (autograd)."""
    lq = torch.log_softmax(s / loss.temperature, -1)
    lp = torch.log_softmax(t / loss.temperature, -1)
    return loss.row_divergence()(lp, lq) * loss.output_scale()


def fused_rows(loss, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The same rows through the fused row blocks (``xent_distill._fused.divergence_rows``)."""
    from xent_distill._fused import divergence_rows

    return divergence_rows(s, t, loss.rule(), lambda lp, lq, _y: loss.row_divergence()(lp, lq))


def check_fused_matches_general(loss, s: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> None:
    """Fused and general rows agree in float64, and so do their gradients under row weights
    ``w``; rows with an infinite value get no gradient on the fused path (the general path
    leaves NaN from 0 * inf there)."""
    xf = s.clone().requires_grad_()
    fused = fused_rows(loss, xf, t)
    xg = s.clone().requires_grad_()
    general = general_rows(loss, xg, t)
    torch.testing.assert_close(fused, general, rtol=1e-9, atol=1e-12)
    finite = torch.isfinite(general)
    (fused[finite] * w[finite]).sum().backward()
    (general[finite] * w[finite]).sum().backward()
    torch.testing.assert_close(xf.grad[finite], xg.grad[finite], rtol=1e-9, atol=1e-12)
    assert (xf.grad[~finite] == 0).all()
