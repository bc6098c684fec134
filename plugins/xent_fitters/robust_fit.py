"""A bounded, robust (Huber) least-squares fit with an analytic Jacobian, for the curve laws."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LogPredJac = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class LsqFit:
    """The end point of :func:`huber_least_squares`."""

    theta: np.ndarray
    objective: float
    converged: bool
    message: str
    n_evals: int


def _huber_rho(delta: float, weights: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """``rho(z = r^2)`` for least_squares such that ``0.5 * sum(rho) = sum w * huber_delta(r)``."""
    d2 = delta * delta

    def rho(z: np.ndarray) -> np.ndarray:
        out = np.empty((3, z.size))
        inside = z <= d2
        sz = np.sqrt(np.where(inside, 1.0, z))
        out[0] = np.where(inside, z, 2.0 * delta * sz - d2)
        out[1] = np.where(inside, 1.0, delta / sz)
        out[2] = np.where(inside, 0.0, -0.5 * delta / (sz * sz * sz))
        if weights is not None:
            out *= weights
        return out

    return rho


def huber_least_squares(
    log_pred_jac: LogPredJac,
    log_y: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    delta: float,
    *,
    weights: np.ndarray | None = None,
    max_evals: int = 400,
    tol: float = 1e-8,
) -> LsqFit:
    """Minimise ``sum_i w_i huber_delta(log_pred_i(theta) - log_y_i)`` within bounds.

    The objective of the fitting engine, solved with the bounded trust-region Gauss-Newton method
    of ``scipy.optimize.least_squares`` (``trf``, robust loss), which uses the full Jacobian
    ``log_pred_jac(theta) -> (log_pred (n,), d log_pred / d theta (n, k))`` and so needs far
    fewer evaluations than a gradient-only method on the long valleys of the curve laws.
    ``tol`` is its ``ftol``/``xtol``/``gtol``: 1e-8 stops once the objective stalls at about
    1e-8 relative (the parameters still drift along flat valleys beyond that, to no effect).
    """
    from scipy.optimize import least_squares

    from .engine import huber

    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    span = upper - lower
    x0 = np.clip(np.asarray(theta0, dtype=np.float64), lower + 1e-9 * span, upper - 1e-9 * span)
    memo: dict[str, Any] = {}

    def evaluate(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = th.tobytes()
        if memo.get("key") != key:
            lp, jac = log_pred_jac(th)
            memo.update(key=key, r=lp - log_y, jac=jac)
            memo["n"] = memo.get("n", 0) + 1
        return memo["r"], memo["jac"]

    def fun(th: np.ndarray) -> np.ndarray:
        r = evaluate(th)[0]
        return np.where(np.isfinite(r), r, np.inf) if not np.isfinite(r).all() else r

    def jac(th: np.ndarray) -> np.ndarray:
        return evaluate(th)[1]

    r0 = fun(x0)
    if not np.isfinite(r0).all():
        return LsqFit(x0, float("inf"), False, "the prediction is not positive at the start", 1)
    res = least_squares(
        fun,
        x0,
        jac=jac,
        bounds=(lower, upper),
        method="trf",
        loss=_huber_rho(delta, weights),
        f_scale=1.0,
        x_scale="jac",
        max_nfev=max_evals,
        ftol=tol,
        xtol=tol,
        gtol=tol,
    )
    r = fun(res.x)
    h = huber(r, delta)
    objective = float(np.sum(h if weights is None else weights * h))
    return LsqFit(np.asarray(res.x), objective, res.status > 0, str(res.message), memo.get("n", 0))
