"""Plain torch formulas of the losses in :mod:`xent_losses.bench_rows` (the baselines).

Each ``formula(torch, inputs) -> loss`` is the loss written plainly from its docstring, as a
user would write it without xent; none of them imports xent.
"""

from __future__ import annotations

import math
from typing import Any


def _ce_rows(t: Any, d: dict[str, Any]) -> Any:
    return t.nn.functional.cross_entropy(d["logits"], d["targets"], reduction="none")


def _aldr_kl(t: Any, d: dict[str, Any], margin=0.1, lam0=10.0, alpha=2.0) -> Any:  # type: ignore[no-untyped-def]
    x, y = d["logits"], d["targets"][:, None]
    log_c = math.log(x.shape[-1])
    s = x / x.abs().mean(-1, keepdim=True)
    gaps = (margin + s - s.gather(1, y)).scatter(1, y, 0.0)
    with t.no_grad():  # one step from the initial temperatures (eval mode keeps them)
        lp = t.log_softmax(gaps / lam0, -1)
        kl = (lp.exp() * (lp + log_c)).sum(-1)
        lam = (lam0 * (1 - kl / (alpha * log_c))).clamp(lam0 * (1 - 1 / alpha), lam0)
    loss = lam * (t.logsumexp(gaps / lam[:, None], -1) - log_c)
    return (loss - alpha * log_c / (2 * lam0) * (lam - lam0) ** 2).mean()


def _bias_loss(t: Any, d: dict[str, Any], alpha: float = 0.3, beta: float = 0.3) -> Any:
    v = d["features"].var(1)
    v = (v - v.min()) / (v.max() - v.min())
    return ((t.exp(alpha * v) - beta) * _ce_rows(t, d)).mean()


def _binary_kd(t: Any, d: dict[str, Any]) -> Any:
    target = t.sigmoid(d["teacher_logits"])
    return t.nn.functional.binary_cross_entropy_with_logits(d["logits"], target)


def _brier(t: Any, d: dict[str, Any]) -> Any:
    x = d["logits"]
    onehot = t.nn.functional.one_hot(d["targets"], x.shape[-1]).to(x.dtype)
    return (t.softmax(x, -1) - onehot).square().sum(-1).mean()


def _correctness(t: Any, d: dict[str, Any]) -> Any:
    x = d["logits"]
    conf = t.softmax(x, -1).amax(-1)
    k = (x.argmax(-1) == d["targets"]).to(x.dtype)
    a = k.mean()
    w = t.where(k > 0, 1 - a, a)
    if float(a) in (0.0, 1.0):  # every weight 0: the plain top-label Brier score
        w = t.ones_like(w)
    return (w * (conf - k).square()).sum() / w.sum()


def _pearson_distance(a: Any, b: Any, dim: int, eps: float = 1e-8) -> Any:
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)  # eps in the denominator, as DIST's official code
    return 1 - (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


def _dist(t: Any, d: dict[str, Any]) -> Any:
    q, p = t.softmax(d["logits"], -1), t.softmax(d["teacher_logits"], -1)
    return _pearson_distance(q, p, 1).mean() + _pearson_distance(q, p, 0).mean()


def _dkd(t: Any, d: dict[str, Any], alpha=1.0, beta=8.0, temp=4.0) -> Any:  # type: ignore[no-untyped-def]
    s, te, y = d["logits"] / temp, d["teacher_logits"] / temp, d["targets"][:, None]
    p, q = t.softmax(te, -1), t.softmax(s, -1)
    py, qy = p.gather(1, y), q.gather(1, y)
    tckd = py * (py.log() - qy.log()) + (1 - py) * ((1 - py).log() - (1 - qy).log())
    # non-target distributions: the target pushed to -1000, as the DKD authors write it
    gt = t.zeros_like(s).scatter(1, y, 1.0)
    lp_hat = t.log_softmax(te - 1000 * gt, -1)
    lq_hat = t.log_softmax(s - 1000 * gt, -1)
    nckd = (lp_hat.exp() * (lp_hat - lq_hat)).sum(-1, keepdim=True)
    return (temp**2 * (alpha * tckd + beta * nckd)).mean()


def _emo(t: Any, d: dict[str, Any]) -> Any:
    x, y = d["logits"], d["targets"]
    e = t.nn.functional.normalize(d["classifier"], dim=-1)
    ce = _ce_rows(t, d)
    demd = 1 - (e[y] * (t.softmax(x, -1) @ e)).sum(-1)
    return (0.5 * (ce + (ce / demd).detach() * demd)).mean()


_VMIN, _VMAX = -10.0, 10.0


def _hl_gauss(t: Any, d: dict[str, Any], sigma_ratio: float = 0.75) -> Any:
    x = d["logits"]
    bins = x.shape[-1]
    edges = t.linspace(_VMIN, _VMAX, bins + 1, dtype=x.dtype)
    sigma = sigma_ratio * (_VMAX - _VMIN) / bins
    y = d["values"].clamp(_VMIN, _VMAX)[:, None]
    cdf = t.special.ndtr((edges - y) / sigma)
    p = (cdf[:, 1:] - cdf[:, :-1]) / (cdf[:, -1:] - cdf[:, :1])
    return -(p * t.log_softmax(x, -1)).sum(-1).mean()


def _two_hot(t: Any, d: dict[str, Any]) -> Any:
    x = d["logits"]
    bins = x.shape[-1]
    pos = (d["values"].clamp(_VMIN, _VMAX) - _VMIN) / ((_VMAX - _VMIN) / (bins - 1))
    j = pos.floor().long().clamp(max=bins - 2)[:, None]
    w_hi = pos[:, None] - j
    lsm = t.log_softmax(x, -1)
    return -((1 - w_hi) * lsm.gather(1, j) + w_hi * lsm.gather(1, j + 1)).mean()


def _skew_kl(t: Any, d: dict[str, Any], alpha: float = 0.1) -> Any:
    p, q = t.softmax(d["teacher_logits"], -1), t.softmax(d["logits"], -1)
    mix = alpha * p + (1 - alpha) * q
    return t.nn.functional.kl_div(mix.log(), p, reduction="batchmean")


def _skew_reverse_kl(t: Any, d: dict[str, Any], alpha: float = 0.1) -> Any:
    p, q = t.softmax(d["teacher_logits"], -1), t.softmax(d["logits"], -1)
    mix = alpha * q + (1 - alpha) * p
    return t.nn.functional.kl_div(mix.log(), q, reduction="batchmean")


def _symmetric_ce(t: Any, d: dict[str, Any], alpha: float = 0.5) -> Any:
    lp, lq = t.log_softmax(d["logits"], -1), t.log_softmax(d["teacher_logits"], -1)
    forward = (lq.exp() * lp).sum(-1)
    reverse = (lp.exp() * lq).sum(-1)
    return -((1 - alpha) * forward + alpha * reverse).mean()


_SEQ = 4  # dco: sequences of 4 answer tokens (a sum of more underflows p in fp32)


def _dco(t: Any, d: dict[str, Any], n: int = 4) -> Any:
    def log1mexp(a: Any) -> Any:  # log(1 - e^a), a < 0; each branch fed only its own range
        cut = -math.log(2)
        return t.where(a > cut, t.log(-t.expm1(a)), t.log1p(-t.exp(a.clamp(max=cut))))

    x, y = d["logits_3d"], d["targets"]
    lp = t.log_softmax(x, -1).gather(-1, y[..., None]).squeeze(-1).sum(-1)
    return (-log1mexp(n * log1mexp(lp))).mean()


def _bce(t: Any, d: dict[str, Any]) -> Any:
    return t.nn.functional.binary_cross_entropy_with_logits(d["logits"], d["targets"])


def _implicit_prm(t: Any, d: dict[str, Any], beta: float = 0.05) -> Any:
    r = beta * ((d["logprobs"] - d["ref_logprobs"]) * d["mask"]).sum(-1)
    return t.nn.functional.binary_cross_entropy_with_logits(r, d["labels"])


def _covariance(t: Any, d: dict[str, Any]) -> Any:
    lp, adv, valid = d["logprobs"].detach(), d["advantages"], d["mask"]
    return (adv - adv[valid].mean()) * (lp - lp[valid].mean())


def _kl_cov(t: Any, d: dict[str, Any], ratio: float = 2e-4, coef: float = 1.0) -> Any:
    lp, old, valid = d["logprobs"], d["old_logprobs"], d["mask"]
    n = int(valid.sum())
    cov = _covariance(t, d).masked_fill(~valid, -math.inf)
    top = cov.flatten().topk(max(1, int(ratio * n))).indices
    penalised = t.zeros(lp.numel(), dtype=lp.dtype).index_fill(0, top, 1.0).view_as(lp)
    loss = -d["advantages"] * t.exp(lp - old) + coef * penalised * (lp - old).abs()
    return (loss * valid).sum() / n


_CLIP_SEED = 7


def _clip_cov(t: Any, d: dict[str, Any], ratio=2e-4, lb=1.0, ub=5.0, eps=0.2) -> Any:  # type: ignore[no-untyped-def]
    lp, old, adv, valid = d["logprobs"], d["old_logprobs"], d["advantages"], d["mask"]
    r = t.exp(lp - old)
    pg1, pg2 = -adv * r, -adv * r.clamp(1 - eps, 1 + eps)
    cov = _covariance(t, d)
    eligible = valid & ~(pg2 > pg1) & (cov > lb) & (cov < ub)
    idx = eligible.flatten().nonzero().squeeze(1)
    take = min(max(1, int(ratio * int(valid.sum()))), idx.numel())
    # the same uniform pick as xent's: a seeded permutation of the eligible tokens
    gen = d.setdefault("clip_gen", t.Generator())
    gen.manual_seed(_CLIP_SEED)
    picked = t.zeros(lp.numel(), dtype=t.bool)
    picked[idx[t.randperm(idx.numel(), generator=gen)[:take]]] = True
    loss = t.where(picked.view_as(lp), t.zeros_like(pg1), t.maximum(pg1, pg2))
    return (loss * valid).sum() / valid.sum()


def _lce(t: Any, d: dict[str, Any]) -> Any:
    return t.nn.functional.cross_entropy(d["hidden"] @ d["classifier"].T, d["targets"])


def _lkd(t: Any, d: dict[str, Any]) -> Any:
    s = t.log_softmax(d["hidden"] @ d["classifier"].T, -1)
    te = t.log_softmax(d["teacher_hidden"] @ d["teacher_classifier"].T, -1)
    return t.nn.functional.kl_div(s, te, reduction="batchmean", log_target=True)


def _ljsd(t: Any, d: dict[str, Any], beta: float = 0.5) -> Any:
    """TRL's generalized JSD (re-written) on h @ W.T, over beta (1 - beta) as xent normalises."""
    kl_div = t.nn.functional.kl_div
    s = t.log_softmax(d["hidden"] @ d["classifier"].T, -1)
    te = t.log_softmax(d["teacher_hidden"] @ d["teacher_classifier"].T, -1)
    mix = t.logaddexp(s + math.log(1 - beta), te + math.log(beta))
    kl_t = kl_div(mix, te, reduction="none", log_target=True)
    kl_s = kl_div(mix, s, reduction="none", log_target=True)
    return (beta * kl_t + (1 - beta) * kl_s).sum() / s.shape[0] / (beta * (1 - beta))


def _matrix_entropy(t: Any, d: dict[str, Any]) -> Any:
    z = d["embeddings"] - d["embeddings"].mean(0)
    z = z / z.norm(dim=1, keepdim=True)
    return t.log((z.T @ z).square().sum() / z.square().sum().square())  # -H_2 (maximize)


def _mmcr(t: Any, d: dict[str, Any]) -> Any:
    z = t.nn.functional.normalize(d["embeddings"], dim=-1)
    centroids = z.view(-1, 2, z.shape[-1]).mean(1)
    return -t.linalg.svdvals(centroids).sum()


def _koleo(t: Any, d: dict[str, Any], eps: float = 1e-8) -> Any:
    z = t.nn.functional.normalize(d["embeddings"], dim=-1)
    dist = t.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    dist = dist + t.diag(t.full((z.shape[0],), math.inf, dtype=z.dtype))
    return -t.log(dist.amin(1) + eps).mean()


def _nt_xent(t: Any, d: dict[str, Any], tau: float = 0.5) -> Any:
    z = t.nn.functional.normalize(t.cat([d["view_a"], d["view_b"]]), dim=-1)
    n = d["view_a"].shape[0]
    sim = (z @ z.T / tau).masked_fill(t.eye(2 * n, dtype=t.bool), -math.inf)
    pos = t.cat([t.arange(n, 2 * n), t.arange(n)])
    return t.nn.functional.cross_entropy(sim, pos)


def _dcov(t: Any, d: dict[str, Any]) -> Any:
    def centred(a: Any) -> Any:
        return a - a.mean(0) - a.mean(1, keepdim=True) + a.mean()

    p, q = d["predictions"], d["protected"]
    a = (p[:, None] - p[None, :]).abs()
    b = (q[:, None, :] - q[None, :, :]).square().sum(-1).sqrt()
    return (centred(a) * centred(b)).mean()


def _cs_ib(t: Any, d: dict[str, Any], beta: float = 0.01) -> Any:
    def gram(a: Any, b: Any) -> Any:  # Gaussian kernel, sigma = 1
        return t.exp(-(a[:, None] - b[None]).square().sum(-1) / 2)

    def qmi(ka: Any, kb: Any) -> Any:
        n = ka.shape[0]
        joint = (ka * kb).mean() * ka.mean() * kb.mean()
        return t.log(joint) - 2 * t.log((ka.sum(1) * kb.sum(1)).sum() / n**3)

    x, z = d["features"], d["latent"]
    y, y_hat = d["values"][:, None], d["predictions"][:, None]
    k = gram(x, x)
    den = k.sum(1).square()

    def term(lg: Any) -> Any:
        return t.log(((k * lg).sum(1) / den).sum())

    pred = term(gram(y, y)) + term(gram(y_hat, y_hat)) - 2 * term(gram(y_hat, y))
    kz = gram(z, z)
    return pred + beta * qmi(k, kz) / t.sqrt(qmi(k, k) * qmi(kz, kz))


def _attention_entropy(t: Any, d: dict[str, Any], coef=1e-5, tol=0.2, theta=0.5) -> Any:  # type: ignore[no-untyped-def]
    a = d["attentions"]
    h = -(a * a.log()).sum(-1)
    hmax = math.log(a.shape[-1])
    dev = h - theta * hmax
    return coef * ((dev.abs() > tol * hmax) * dev.square()).sum() / a.shape[1]
