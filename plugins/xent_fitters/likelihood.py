"""The Huber likelihood objective: Huber-distributed log residuals with a free scale.

The engine's default objective is the *sum* of Huber losses of the log residuals,
``sum_i huber_delta(r_i)``. The likelihood objective instead reads the residuals as draws from the
density ``p(r) = exp(-huber_delta(r / sigma)) / (sigma Z(delta))`` and minimises the negative
log-likelihood over the law's parameters and the scale ``sigma`` together:

    NLL(theta, sigma) = sum_i huber_delta(r_i / sigma) + n log sigma + n log Z(delta)
    Z(delta) = sqrt(2 pi) (1 - 2 Phi(-delta)) + 2 exp(-delta^2 / 2) / delta

With the usual ``delta = 1e-3`` almost every standardised residual lies in the linear part, so the
optimum is close to least absolute deviations; it is what Besiroglu et al. ("Chinchilla Scaling: A
replication attempt", arXiv:2404.10102) fit, and reproduces their estimates on the bundled data.
The optimiser is BFGS (as theirs) on ``(theta, log sigma)``, started from the Huber-sum optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .engine import Problem


def log_normaliser(delta: float) -> float:
    """``log Z(delta)``, the log of the integral of ``exp(-huber_delta(x))`` over the real line."""
    inner = math.sqrt(2.0 * math.pi) * math.erf(delta / math.sqrt(2.0))
    return math.log(inner + 2.0 * math.exp(-0.5 * delta * delta) / delta)


def huber_nll(
    problem: Problem, x: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Negative log-likelihood and its gradient at ``x = (theta, log sigma)``.

    ``weights`` (n,) counts each point (bootstrap resampling); ``None`` counts each once.
    """
    theta, log_sigma = x[:-1], float(x[-1])
    delta = problem.delta
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        sigma = math.exp(log_sigma)
        lp, vjp = problem.log_predict(theta[None, :])
        z = (lp[0] - problem.log_y) / sigma
        u = np.clip(z, -delta, delta)
        h = u * (z - 0.5 * u)
        w = np.ones_like(z) if weights is None else weights
        n = float(w.sum())
        f = float((w * h).sum() + n * log_sigma + n * log_normaliser(delta))
        g_theta = vjp((w * u / sigma)[None, :])[0]
        g_sigma = float(n - (w * u * z).sum())
    g = np.r_[g_theta, g_sigma]
    if not (math.isfinite(f) and np.isfinite(g).all()):
        return math.inf, np.zeros_like(x)
    return f, g


@dataclass
class LikelihoodFit:
    """The optimum of :func:`fit_huber_likelihood`."""

    theta: np.ndarray
    sigma: float
    nll: float
    converged: bool
    message: str


def _initial_log_sigma(problem: Problem, theta: np.ndarray) -> float:
    lp, _ = problem.log_predict(theta[None, :])
    mad = float(np.mean(np.abs(lp[0] - problem.log_y)))
    # in the linear regime the optimal scale is delta * mean |r|
    return math.log(max(problem.delta * mad, 1e-300))


def fit_huber_likelihood(
    problem: Problem,
    theta0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    maxiter: int = 10000,
) -> LikelihoodFit:
    """Minimise :func:`huber_nll` with BFGS from ``theta0`` (the scale starts at its
    linear-regime optimum). Converged when BFGS succeeds, or stops for lost precision at a point
    with a negligible gradient (the objective has kinks where residuals cross zero)."""
    from scipy.optimize import minimize

    x0 = np.r_[np.asarray(theta0, dtype=np.float64), _initial_log_sigma(problem, theta0)]
    res = minimize(
        lambda x: huber_nll(problem, x, weights),
        x0,
        jac=True,
        method="BFGS",
        options={"maxiter": maxiter, "gtol": 1e-10},
    )
    x = np.asarray(res.x, dtype=np.float64)
    f, g = huber_nll(problem, x, weights)
    inside = bool(np.all(x[:-1] >= problem.lower) and np.all(x[:-1] <= problem.upper))
    small_gradient = bool(np.abs(g).max() <= 1e-3 * max(1.0, abs(f)))
    converged = math.isfinite(f) and inside and (bool(res.success) or small_gradient)
    message = str(res.message) if inside else "the optimum left the parameter box"
    return LikelihoodFit(x[:-1], math.exp(float(x[-1])), f, converged, message)


def bootstrap_likelihood(
    problem: Problem,
    theta: np.ndarray,
    B: int,
    *,
    seed: int | None = 0,
    progress: bool = False,
    chunk: int = 250,
) -> tuple[np.ndarray, np.ndarray]:
    """Refit the likelihood on ``B`` resamples (counts drawn ``chunk`` replicates at a time),
    each started from the full-data optimum. Returns ``(samples (B, k), converged (B,))``."""
    from .engine import _progress, bootstrap_counts

    rng = np.random.default_rng(seed)
    samples = np.empty((B, problem.k))
    conv = np.zeros(B, dtype=bool)
    with _progress(progress, B, "bootstrap") as advance:
        for lo in range(0, B, chunk):
            counts = bootstrap_counts(problem.n, min(chunk, B - lo), rng)
            for i, w in enumerate(counts):
                fit = fit_huber_likelihood(problem, theta, weights=w)
                samples[lo + i], conv[lo + i] = fit.theta, fit.converged
            advance(len(counts))
    return samples, conv
