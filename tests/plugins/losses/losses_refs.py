"""Float64 reference formulas for the xent_losses tests, written independently of the plugin.

Each ``ref_*`` takes float64 tensors (flattened to (N, C) / (N,)) and returns per-item values
(N,) so that the tests can reduce them themselves. They use the naive textbook formulas
(explicit softmax, loops, scipy's normal CDF, the variational form of LDR-KL, the double sum of
EMO), not the numerically careful forms of the implementation. Where a value is not
differentiated (ALDR-KL's temperature, EMO's mixing ratio, Bias Loss's weights), the reference
detaches it explicitly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values.detach())
    return e / e.sum(dim=-1, keepdim=True)


def p_target(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return softmax(z)[torch.arange(z.shape[0]), y]


def reduce_ref(per_item: torch.Tensor, valid: torch.Tensor, reduction: str, lead, denom=None):
    per_item = torch.where(valid, per_item, torch.zeros_like(per_item))
    if reduction == "none":
        return per_item.reshape(lead)
    if reduction == "sum":
        return per_item.sum()
    d = valid.sum() if denom is None else denom
    return per_item.sum() / d if d > 0 else per_item.sum() * 0


# --------------------------------------------------------------------------- classification
def ref_cross_entropy(z, y, *, weight=None, label_smoothing=0.0, softcap=None, temperature=1.0):
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    p = softmax(z)
    c = z.shape[-1]
    w = torch.ones(c, dtype=z.dtype) if weight is None else torch.tensor(weight, dtype=z.dtype)
    if y.is_floating_point():
        q = (1 - label_smoothing) * y + label_smoothing / c
        return -(w * q * torch.log(p)).sum(-1)
    onehot = torch.nn.functional.one_hot(y, c).to(z.dtype)
    q = (1 - label_smoothing) * onehot + label_smoothing / c
    return -(q * w * torch.log(p)).sum(-1)


def ref_lse_squared(z):
    return torch.log(torch.exp(z).sum(-1)) ** 2


def ref_comp_sum(z, y, tau):
    p = p_target(z, y)
    if tau == 1:
        return -torch.log(p)
    u = 1.0 / p - 1.0  # sum_{k != y} exp(z_k - z_y)
    return (1.0 - (1.0 + u) ** (1.0 - tau)) / (tau - 1.0)


def ref_focal(z, y, gamma, alpha=None):
    p = p_target(z, y)
    a = 1.0
    if alpha is not None:
        a = alpha if isinstance(alpha, float) else torch.tensor(alpha, dtype=z.dtype)[y]
    return -a * (1 - p) ** gamma * torch.log(p)


def ref_poly1(z, y, epsilon):
    if y.is_floating_point():
        p = softmax(z)
        return -(y * torch.log(p)).sum(-1) + epsilon * (1 - (y * p).sum(-1))
    p = p_target(z, y)
    return -torch.log(p) + epsilon * (1 - p)


def _scores(z, normalize):
    if normalize == "softplus-mean":
        s = torch.log1p(torch.exp(z))
        return s / s.mean(-1, keepdim=True)
    if normalize == "abs-mean":
        return z / z.abs().mean(-1, keepdim=True)
    return z


def ref_ldr_gaps(z, y, margin, normalize):
    s = _scores(z, normalize)
    c = z.shape[-1]
    onehot = torch.nn.functional.one_hot(y, c).to(z.dtype)
    s_y = (s * onehot).sum(-1, keepdim=True)
    return margin * (1 - onehot) + s - s_y


def ref_ldr_kl(z, y, margin, lam, normalize):
    """Variational form: value of max_p sum p d - lam KL(p || uniform) at its maximiser."""
    d = ref_ldr_gaps(z, y, margin, normalize)
    lam = lam if isinstance(lam, float) else lam[:, None]
    p = softmax(d / lam)
    c = z.shape[-1]
    kl = (p * torch.log(p * c)).sum(-1, keepdim=True)
    return ((p * d).sum(-1, keepdim=True) - lam * kl).squeeze(-1)


def ref_aldr_kl(z, y, margin, lam0, alpha, normalize, lam_old):
    """One visit of ALDR-KL: p from the stored lam, closed-form lam update, loss at the new lam."""
    c = z.shape[-1]
    d = ref_ldr_gaps(z, y, margin, normalize)
    dd = d.detach().numpy()
    lam_new = np.empty(len(dd))
    for i in range(len(dd)):
        a = dd[i] / lam_old[i]
        p = np.exp(a - a.max())
        p /= p.sum()
        kl = float(np.sum(p * np.log(p * c)))
        lam_new[i] = min(max(lam0 * (1 - kl / (alpha * math.log(c))), lam0 * (1 - 1 / alpha)), lam0)
    lam_t = torch.tensor(lam_new, dtype=z.dtype)
    value = ref_ldr_kl(z, y, margin, lam_t, normalize)
    penalty = alpha * math.log(c) / (2 * lam0) * (lam_t - lam0) ** 2
    return value - penalty, lam_new


def ref_dice(z, y, alpha, smooth, square):
    p = softmax(z)
    c = z.shape[-1]
    t = y if y.is_floating_point() else torch.nn.functional.one_hot(y, c).to(z.dtype)
    rows = []
    for i in range(z.shape[0]):
        total = 0
        for k in range(c):
            s = (1 - p[i, k]) ** alpha * p[i, k]
            den = s * s + t[i, k] ** 2 + smooth if square else s + t[i, k] + smooth
            total = total + 1 - (2 * s * t[i, k] + smooth) / den
        rows.append(total)
    return torch.stack(rows)


def ref_bias_loss(z, y, features, valid, alpha, beta):
    f = features.detach().reshape(features.shape[0], -1).numpy()
    v = f.var(axis=1, ddof=1)
    vv = v[valid.numpy()]
    if len(vv) and vv.max() > vv.min():
        v = (v - vv.min()) / (vv.max() - vv.min())
    else:
        v = np.zeros_like(v)
    weight = torch.tensor(np.exp(alpha * v) - beta, dtype=z.dtype)
    return -weight * torch.log(p_target(z, y))


def ref_pass_at_n(z, y, n):
    p = p_target(z, y)
    return -torch.log(1 - (1 - p) ** n)


def ref_demd(z, target, embedding):
    """Double sum sum_i sum_j q_i P_j (1 - cos(e_i, e_j)) with pairwise cosines."""
    q = softmax(z)
    e = embedding.detach()
    norms = torch.sqrt((e * e).sum(-1))
    cos = (e @ e.T) / (norms[:, None] * norms[None, :])
    cost = 1 - cos
    return torch.einsum("ni,nj,ij->n", q, target, cost)


def ref_emo(z, y, embedding, mix, max_ratio=None):
    c = z.shape[-1]
    target = y if y.is_floating_point() else torch.nn.functional.one_hot(y, c).to(z.dtype)
    distance = ref_demd(z, target, embedding)
    if mix == "none":
        return distance
    ce = -(target * torch.log(softmax(z))).sum(-1)
    ratio = (ce / distance).detach()
    if max_ratio is not None:
        ratio = torch.clamp(ratio, max=max_ratio)
    return 0.5 * (ce + ratio * distance)


# --------------------------------------------------------------------------- regression
def ref_hl_gauss_target(values: np.ndarray, vmin, vmax, num_bins, sigma_ratio=0.75):
    edges = np.linspace(vmin, vmax, num_bins + 1)
    sigma = sigma_ratio * (vmax - vmin) / num_bins
    out = np.zeros((len(values), num_bins))
    for i, v in enumerate(np.clip(values, vmin, vmax)):
        cdf = norm.cdf(edges, loc=v, scale=sigma)
        out[i] = np.diff(cdf) / (cdf[-1] - cdf[0])
    return out


def ref_two_hot_target(values: np.ndarray, vmin, vmax, num_bins):
    atoms = np.linspace(vmin, vmax, num_bins)
    out = np.zeros((len(values), num_bins))
    for i, v in enumerate(np.clip(values, vmin, vmax)):
        j = int(np.searchsorted(atoms, v, side="right")) - 1
        j = min(max(j, 0), num_bins - 2)
        w = (atoms[j + 1] - v) / (atoms[j + 1] - atoms[j])
        out[i, j], out[i, j + 1] = w, 1 - w
    return out


def ref_histogram_ce(z, target: np.ndarray):
    return -(torch.tensor(target, dtype=z.dtype) * torch.log(softmax(z))).sum(-1)
