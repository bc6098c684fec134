"""Rows of ``xent bench estimators`` beyond the kNN pair: one per registered estimator.

Each row pairs an estimator with a peer library function where one is installed (vendi-score,
dcor, scikit-dimension, torchmetrics, scikit-learn, scipy) or else with the estimator's formula
written plainly in numpy / torch from its docstring, labelled ``"no peer: naive formula"``.
The baselines use none of xent's estimator code (``compressed-mi``'s reuses the suite's
cKDTree KSG formula). Each row has its own default size, a call well under a second on one
CPU thread; ``rows`` x ``cols`` is samples x dimensions, predictions x classes (or
vocabulary), samples x alphabet size (discrete entropies), sequences x tokens, members x
outcomes (mixture) or queries x keys of 8 attention maps. Long by design: one short block per
estimator, all alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAIVE = "no peer: naive formula"


@dataclass
class Row:
    """One estimator against its baseline: inputs, xent call, baseline call, default size."""

    peer: str
    size: dict[str, int]
    data: Callable[[dict[str, int], Any], tuple[Any, ...]]
    base: Callable[..., float]
    params: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)
    split: Callable[..., tuple[tuple[Any, ...], dict[str, Any]]] | None = None
    """For xent: inputs -> (call inputs, data-dependent constructor parameters)."""
    torch_in: bool = False
    """Hand both variants torch tensors (estimators that work on model outputs)."""
    rtol: float = 1e-9
    """Agreement expected between xent and the baseline (checked by the tests)."""


# ---- shared plain formulas ---------------------------------------------------------------


def _sqdist(a: Any, b: Any) -> Any:
    from scipy.spatial.distance import cdist

    return cdist(a, b, "sqeuclidean")


def _entropy(p: Any) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _cov_spectrum(x: Any, center: bool = True, normalize_rows: bool = True) -> Any:
    if center:
        x = x - x.mean(0)
    if normalize_rows:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(x.T @ x / len(x)), 0.0, None)
    return lam / lam.sum()


def _dse(x: Any, sigma: float, t: float = 1.0) -> float:
    k = np.exp(-_sqdist(x, x) / (2 * sigma**2))
    s = 1.0 / np.sqrt(k.sum(1))
    lam = np.abs(np.linalg.eigvalsh(k * s[:, None] * s[None, :])) ** t
    return _entropy(lam / lam.sum()) / math.log(2)


def _counts(samples: Any) -> Any:
    return np.unique(samples, return_counts=True)[1]


def _top_label(p: Any, y: Any) -> tuple[Any, Any]:
    return p.max(1), (p.argmax(1) == y).astype(np.float64)


# ---- inputs ------------------------------------------------------------------------------


def _emb(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, d = size["rows"], size["cols"]
    scales = np.arange(1, d + 1) ** -0.7  # a decaying spectrum, like real embeddings
    return (rng.standard_normal((n, d)) * scales + 0.1,)


def _pair(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, d = size["rows"], size["cols"]
    x = rng.standard_normal((n, d))
    return x, 0.6 * x + 0.8 * rng.standard_normal((n, d))


def _symbols(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    return (rng.zipf(1.3, size["rows"]) % size["cols"],)


def _probs(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, c = size["rows"], size["cols"]
    z = 2.5 * rng.standard_normal((n, c))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(n) < 0.7, p.argmax(1), rng.integers(0, c, n))
    return p, y


def _logits(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    return (3.0 * rng.standard_normal((size["rows"], size["cols"])).astype(np.float32),)


# ---- baselines ---------------------------------------------------------------------------


def _alpha_req(x: Any) -> float:
    lam = _cov_spectrum(x, normalize_rows=False)[::-1]
    lam = lam[lam > 1e-12 * lam[0]]
    li, ll = np.log(np.arange(1, len(lam) + 1)), np.log(lam)
    w = np.exp(-li)  # 1 / rank
    mx, my = (w * li).sum() / w.sum(), (w * ll).sum() / w.sum()
    return float(-(w * (li - mx) * (ll - my)).sum() / (w * (li - mx) ** 2).sum())


def _attention_entropy(a: Any) -> float:
    return float(-(a * a.log()).sum(-1).mean())


def _best_of_n(p: Any, r: Any, n: int = 4) -> float:
    ps = p[np.argsort(r)]
    f = np.cumsum(ps)
    pi = f**n - np.concatenate([[0.0], f[:-1]]) ** n
    keep = pi > 0
    return float((pi[keep] * np.log(pi[keep] / ps[keep])).sum())


def _chao_shen(s: Any) -> float:
    c = _counts(s).astype(np.float64)
    n = c.sum()
    f1 = (c == 1).sum()
    cov = 1 - (n - 1 if f1 == n else f1) / n
    pa = cov * c / n
    return float(-(pa * np.log(pa) / (1 - (1 - pa) ** n)).sum())


def _compressed_mi(x: Any, y: Any) -> float:
    from .bench import _ksg_peer

    def pca(a: Any) -> Any:
        a = a - a.mean(0)
        return a @ np.linalg.svd(a, full_matrices=False)[2][:2].T

    return _ksg_peer(pca(x), pca(y))


def _log_mean_k(a: Any, b: Any, sigma: float) -> float:
    return float(np.log(np.exp(-_sqdist(a, b) / (2 * sigma**2)).mean()))


def _cs_div(x: Any, y: Any, sigma: float = 1.0) -> float:
    lm = _log_mean_k
    return -2 * lm(x, y, sigma) + lm(x, x, sigma) + lm(y, y, sigma)


def _cs_qmi(x: Any, y: Any, sigma: float = 1.0) -> float:
    kx = np.exp(-_sqdist(x, x) / (2 * sigma**2))
    ky = np.exp(-_sqdist(y, y) / (2 * sigma**2))
    n = len(x)
    joint = (kx * ky).sum() / n**2
    marg = kx.sum() * ky.sum() / n**4
    cross = kx.sum(0) @ ky.sum(1) / n**3
    return float(np.log(joint * marg) - 2 * np.log(cross))


def _dc_pdd_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    b, t, v = size["rows"], size["cols"], 32000
    lp = -rng.exponential(6.0, (b, t))
    ids = rng.zipf(1.2, (b, t)) % v
    return lp, ids, rng.integers(0, 1000, v)


def _dc_pdd(lp: Any, ids: Any, counts: Any, a: float = 0.01) -> float:
    nlp = -np.log((counts + 1.0) / (counts.sum() + len(counts)))
    scores = []
    for lpb, idb in zip(lp, ids, strict=True):
        first = np.unique(idb, return_index=True)[1]
        scores.append(np.minimum(np.exp(lpb[first]) * nlp[idb[first]], a).mean())
    return float(np.mean(scores))


def _dsmi(x: Any, y: Any, sigma: float = 2.0) -> float:
    labels, counts = np.unique(y, return_counts=True)
    cond = sum(c / len(y) * _dse(x[y == lab], sigma) for lab, c in zip(labels, counts, strict=True))
    return _dse(x, sigma) - cond


def _patching(h: Any, theta: float = 1.5) -> float:
    b, length = h.shape
    # S = {0, 1} u {t+1 : t >= 1, H_t > theta}, starts before the end of each sequence
    return float(b * length / (2 * b + (h[:, 1 : length - 1] > theta).sum()))


def _switch(h: Any, threshold: float = 1.5, r: float = 0.1, window: int = 4) -> float:
    c = np.cumsum(h, axis=1)
    c[:, window:] = c[:, window:] - c[:, :-window]
    mean = c / np.minimum(np.arange(1, h.shape[1] + 1), window)
    f = float((mean > threshold).mean())
    return f + (1 - f) * r


def _erank(x: Any) -> float:
    return math.exp(_entropy(_cov_spectrum(x)))


def _gauss_peer(x: Any) -> float:
    from scipy.stats import multivariate_normal

    return float(multivariate_normal(np.zeros(x.shape[1]), np.cov(x.T)).entropy())


def _id_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    z = rng.standard_normal((size["rows"], 5))
    return (np.tanh(z @ rng.standard_normal((5, size["cols"]))),)


def _skdim_mle(x: Any) -> float:
    import skdim

    return float(skdim.id.MLE().fit(x, n_neighbors=20).dimension_)


def _ks(p: Any, y: Any) -> float:
    c, k = _top_label(p, y)
    o = np.argsort(c, kind="stable")
    return float(np.abs(np.cumsum(c[o] - k[o])).max() / len(c))


def _sharpness(x: Any, y: Any) -> float:
    d = np.sqrt(_sqdist(x, x))
    diff = y[:, None] != y[None, :]
    return float((diff / np.where(diff, d, 1.0)).max())


def _mnn(x: Any) -> float:
    a = x / np.linalg.norm(x, axis=1, keepdims=True)
    norms = np.sort(np.linalg.norm(a, axis=0))[::-1]
    return float(norms[: min(a.shape)].sum() / len(a))


def _miller_madow(s: Any) -> float:
    c = _counts(s)
    return _entropy(c / c.sum()) + (len(c) - 1) / (2 * c.sum())


def _min_k(lp: Any, k: float = 0.2) -> float:
    n = max(1, int(k * lp.shape[1]))
    return float(np.sort(lp, axis=1)[:, :n].mean(1).mean())


def _mixture(lp: Any) -> float:
    from scipy.special import logsumexp

    return float(-logsumexp(-np.log(len(lp)) + lp.sum(1)))


def _nc_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, d, k = size["rows"], size["cols"], 10
    y = rng.integers(0, k, n)
    return 3.0 * rng.standard_normal((k, d))[y] + rng.standard_normal((n, d)), y


def _nc1(h: Any, y: Any) -> float:
    k = int(y.max()) + 1
    mu = np.stack([h[y == c].mean(0) for c in range(k)])
    m = mu - h.mean(0)
    w = h - mu[y]
    sigma_w, sigma_b = w.T @ w / len(h), m.T @ m / k
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / k)


def _pass_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n = 200
    return n, rng.binomial(n, rng.beta(0.5, 2.0, size["rows"]))


def _pass_at_k(n: int, c: Any, k: int = 10) -> float:
    from scipy.special import comb

    return float(np.mean(1.0 - comb(n - c, k) / comb(n, k)))


def _policy_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    b, t = size["rows"], size["cols"]
    lp = -rng.exponential(1.0, (b, t))
    return lp, rng.standard_normal((b, 1)) + 0.3 * lp


def _policy_cov(lp: Any, adv: Any) -> float:
    adv = adv.expand_as(lp)
    return float(((lp - lp.mean()) * (adv - adv.mean())).mean())


def _rankme(x: Any, eps: float = 1e-7) -> float:
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + eps
    return math.exp(-(p * np.log(p)).sum())


def _ts_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, c = size["rows"], size["cols"]
    y = rng.integers(0, c, n)
    z = rng.standard_normal((n, c))
    z[np.arange(n), y] += 1.5
    return 4.0 * z, y


def _ts_nll(z: Any, y: Any) -> float:
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    zy = z[np.arange(len(y)), y]

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        return float(np.mean(logsumexp(z / t, axis=1) - zy / t))

    res = minimize_scalar(
        nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-10}
    )
    return float(res.fun)


def _token_entropy(z: Any) -> float:
    import torch

    lp = torch.log_softmax(z, -1)
    return float(-(lp.exp() * lp).sum(-1).mean())


def _vendi_peer(x: Any) -> float:
    from vendi_score import vendi

    return float(vendi.score_dual(x, q=1, normalize=True))


def _ece_peer(p: Any, y: Any) -> float:
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(multiclass_calibration_error(p, y, num_classes=p.shape[1], n_bins=15))


def _brier_peer(p: Any, y: Any) -> float:
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y, p))


def _plugin_peer(s: Any) -> float:
    from scipy.stats import entropy

    return float(entropy(_counts(s)))


def _dcor_peer(x: Any, y: Any) -> float:
    import dcor

    return float(dcor.distance_correlation(x, y))


def _attn_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    s = 2.0 * rng.standard_normal((8, size["rows"], size["cols"])).astype(np.float32)
    a = np.exp(s - s.max(-1, keepdims=True))
    return (a / a.sum(-1, keepdims=True),)


def _bon_data(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    p = rng.random(size["rows"]) ** 3
    return p / p.sum(), rng.standard_normal(size["rows"])


def _entropies(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    return (3.0 * rng.random((size["rows"], size["cols"])),)


def _labelled(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    n, d = size["rows"], size["cols"]
    return rng.standard_normal((n, d)), rng.integers(0, 5, n)


def _binary(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    p = rng.random(size["rows"])
    return p, (rng.random(size["rows"]) < p).astype(np.int64)


def _members(size: dict[str, int], rng: Any) -> tuple[Any, ...]:
    m, n = size["rows"], size["cols"]
    return (-rng.exponential(1.0, (m, n)) - 0.01 * np.arange(m)[:, None],)


EMB = {"rows": 4000, "cols": 256}
"""Matrix-based estimators on embeddings: n=4000 samples x d=256 features."""


def rows() -> dict[str, Row]:
    """Estimator name -> its row."""
    return {
        "alpha-req": Row(NAIVE, dict(EMB), _emb, _alpha_req),
        "attention-entropy": Row(
            NAIVE,
            {"rows": 512, "cols": 512},
            _attn_data,
            _attention_entropy,
            torch_in=True,
            rtol=1e-5,
        ),
        "best-of-n-kl": Row(
            NAIVE, {"rows": 200000}, _bon_data, _best_of_n, params={"n": 4}, rtol=1e-8
        ),
        "brier-score": Row(
            "sklearn.metrics.brier_score_loss",
            {"rows": 200000},
            _binary,
            _brier_peer,
            params={"mode": "binary"},
        ),
        "chao-shen": Row(NAIVE, {"rows": 20000, "cols": 5000}, _symbols, _chao_shen),
        "collision-entropy": Row(
            NAIVE,
            {"rows": 200000, "cols": 5000},
            _symbols,
            lambda s: -math.log(((_counts(s) / len(s)) ** 2).sum()),
        ),
        "compressed-mi": Row(
            "PCA (numpy SVD) + cKDTree KSG formula",
            {"rows": 4000, "cols": 16},
            _pair,
            _compressed_mi,
            params={"dim_x": 2, "dim_y": 2},
            rtol=1e-6,
        ),
        "cs-divergence": Row(
            NAIVE, {"rows": 2000, "cols": 8}, _pair, _cs_div, params={"sigma": 1.0}
        ),
        "cs-qmi": Row(NAIVE, {"rows": 2000, "cols": 4}, _pair, _cs_qmi, params={"sigma": 1.0}),
        "dc-pdd": Row(
            NAIVE,
            {"rows": 32, "cols": 1024},
            _dc_pdd_data,
            _dc_pdd,
            split=lambda lp, ids, counts: ((lp, ids), {"ref_counts": counts}),
        ),
        "distance-correlation": Row(
            "dcor.distance_correlation", {"rows": 2000, "cols": 3}, _pair, _dcor_peer
        ),
        "dse": Row(
            NAIVE,
            {"rows": 800, "cols": 16},
            lambda s, r: (_emb(s, r)[0] * 4,),
            lambda x: _dse(x, 2.0),
            params={"sigma": 2.0},
            rtol=1e-8,
        ),
        "dsmi": Row(
            NAIVE,
            {"rows": 800, "cols": 16},
            lambda s, r: _nc_data(s, r),
            _dsmi,
            params={"sigma": 2.0, "matched": False, "y_kind": "labels"},
            rtol=1e-8,
        ),
        "ece": Row(
            "torchmetrics multiclass_calibration_error",
            {"rows": 100000, "cols": 10},
            _probs,
            _ece_peer,
            torch_in=True,
            rtol=1e-5,
        ),
        "entropy-patching": Row(
            NAIVE,
            {"rows": 64, "cols": 4096},
            _entropies,
            _patching,
            params={"mode": "threshold", "threshold": 1.5},
        ),
        "entropy-switch": Row(
            NAIVE,
            {"rows": 64, "cols": 4096},
            _entropies,
            _switch,
            params={"threshold": 1.5, "size_ratio": 0.1, "window": 4},
        ),
        "erank": Row(NAIVE, dict(EMB), _emb, _erank),
        "gaussian-entropy": Row(
            "scipy.stats.multivariate_normal(cov=np.cov(x.T)).entropy",
            {"rows": 20000, "cols": 64},
            _emb,
            _gauss_peer,
        ),
        "intrinsic-dimension": Row(
            "skdim.id.MLE().fit(x, n_neighbors=20)",
            {"rows": 2000, "cols": 20},
            _id_data,
            _skdim_mle,
            rtol=1e-8,
        ),
        "ks-calibration-error": Row(NAIVE, {"rows": 200000, "cols": 10}, _probs, _ks),
        "label-sharpness": Row(
            NAIVE, {"rows": 2000, "cols": 16}, _labelled, _sharpness, params={"num_pairs": None}
        ),
        "matrix-entropy": Row(NAIVE, dict(EMB), _emb, lambda x: _entropy(_cov_spectrum(x))),
        "matrix-nuclear-norm": Row(NAIVE, {"rows": 512, "cols": 4096}, _emb, _mnn),
        "miller-madow": Row(NAIVE, {"rows": 200000, "cols": 5000}, _symbols, _miller_madow),
        "min-k-prob": Row(
            NAIVE, {"rows": 64, "cols": 2048}, lambda s, r: (-(_entropies(s, r)[0] ** 2),), _min_k
        ),
        "mixture-log-loss": Row(
            NAIVE,
            {"rows": 8, "cols": 100000},
            _members,
            _mixture,
            params={"mode": "sequential", "statistic": "log-loss"},
        ),
        "neural-collapse": Row(NAIVE, {"rows": 20000, "cols": 64}, _nc_data, _nc1, rtol=1e-7),
        "pass-at-k": Row(
            NAIVE, {"rows": 100000}, _pass_data, _pass_at_k, params={"k": 10}, rtol=1e-10
        ),
        "plugin-entropy": Row(
            "scipy.stats.entropy (np.unique counts)",
            {"rows": 200000, "cols": 5000},
            _symbols,
            _plugin_peer,
        ),
        "policy-entropy-covariance": Row(
            NAIVE, {"rows": 64, "cols": 1024}, _policy_data, _policy_cov, torch_in=True
        ),
        "rankme": Row(NAIVE, dict(EMB), _emb, _rankme),
        "temperature-scaling": Row(
            NAIVE + " (scipy bounded Brent on log T)",
            {"rows": 20000, "cols": 100},
            _ts_data,
            _ts_nll,
            rtol=1e-7,
        ),
        "token-entropy": Row(
            NAIVE,
            {"rows": 1024, "cols": 32768},
            _logits,
            _token_entropy,
            torch_in=True,
            rtol=1e-5,
        ),
        "vendi": Row("vendi_score.vendi.score_dual", dict(EMB), _emb, _vendi_peer),
    }
