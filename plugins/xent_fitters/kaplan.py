"""Kaplan et al.'s joint law L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .engine import Problem
from .law import HuberLaw, as_output, make_grid

KAPLAN_GRID: dict[str, list[float]] = {
    "n_c": [float(np.log(v)) for v in (1e10, 1e12, 1e14, 1e16)],
    "d_c": [float(np.log(v)) for v in (1e10, 1e12, 1e14, 1e16)],
    "alpha_N": [0.03, 0.076, 0.15, 0.3],
    "alpha_D": [0.03, 0.095, 0.2, 0.4],
}


def predict_kaplan(params: Mapping[str, float], *, N: Any, D: Any) -> Any:
    """``[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D``."""
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    aN, aD = params["alpha_N"], params["alpha_D"]
    return as_output(((params["N_c"] / N) ** (aN / aD) + params["D_c"] / D) ** aD)


def compute_optimal_kaplan(params: Mapping[str, float], C: Any) -> tuple[Any, Any]:
    """``(N_opt, D_opt)`` minimising the law under ``C = 6 N D``.

    With ``p = alpha_N/alpha_D``: ``N_opt = (p N_c^p C / (6 D_c))^(1/(1+p))``.
    """
    p = params["alpha_N"] / params["alpha_D"]
    C = np.asarray(C, dtype=np.float64)
    n = (p * params["N_c"] ** p * C / (6.0 * params["D_c"])) ** (1.0 / (1.0 + p))
    return as_output(n), as_output(C / (6.0 * n))


def kaplan_log_predict(
    lN: np.ndarray, lD: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """Batched ``log L`` and its VJP over ``theta = (log N_c, log D_c, alpha_N, alpha_D)``."""

    def log_predict(theta: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        nc, dc, aN, aD = (theta[:, i, None] for i in range(4))
        dn = nc - lN  # log(N_c / N)
        u1 = (aN / aD) * dn
        u2 = dc - lD
        top = np.maximum(u1, u2)
        e1, e2 = np.exp(u1 - top), np.exp(u2 - top)
        tot = e1 + e2
        s = top + np.log(tot)
        w1, w2 = e1 / tot, e2 / tot

        def vjp(u: np.ndarray) -> np.ndarray:
            g = np.empty((theta.shape[0], 4))
            g[:, 0] = (u * w1).sum(axis=1) * aN[:, 0]
            g[:, 1] = (u * w2).sum(axis=1) * aD[:, 0]
            g[:, 2] = (u * w1 * dn).sum(axis=1)
            g[:, 3] = (u * (s - w1 * u1)).sum(axis=1)
            return g

        return aD * s, vjp

    return log_predict


class KaplanLaw(HuberLaw):
    """Kaplan et al.'s joint law L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

    Formula: ``L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D`` (no irreducible
    term), fitted in log space with a Huber loss (``delta``) over a 256-start grid of
    ``n_c = log N_c``, ``d_c = log D_c``, ``alpha_N``, ``alpha_D`` (or ``grid``).
    ``compute_optimal(C)`` minimises it under C = 6ND: N_opt ~ C^(alpha_D/(alpha_N+alpha_D)).

    Columns: ``N`` (non-embedding parameters), ``D`` (tokens), ``loss``. Fitted parameters:
    ``N_c``, ``D_c``, ``alpha_N``, ``alpha_D``. The paper reports alpha_N = 0.076,
    alpha_D = 0.103, N_c = 6.4e13, D_c = 1.8e13. Engine options as for ``chinchilla``.
    """

    citation = ("Scaling Laws for Neural Language Models", "arXiv:2001.08361")
    inputs = ("N", "D")

    law_name = "kaplan"
    input_names = ("N", "D")
    internal_names = ("n_c", "d_c", "alpha_N", "alpha_D")
    param_names = ("N_c", "D_c", "alpha_N", "alpha_D")

    predict_fn = staticmethod(predict_kaplan)
    compute_optimal_fn = staticmethod(compute_optimal_kaplan)

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        return Problem(
            kaplan_log_predict(np.log(cols["N"]), np.log(cols["D"])),
            np.log(cols["loss"]),
            self.internal_names,
            np.array([-50.0, -50.0, 1e-4, 1e-3]),
            np.array([120.0, 120.0, 5.0, 5.0]),
            self.delta,
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return make_grid(KAPLAN_GRID, self.internal_names)

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        nc, dc, aN, aD = map(float, theta)
        return {"N_c": float(np.exp(nc)), "D_c": float(np.exp(dc)), "alpha_N": aN, "alpha_D": aD}

    def derived(self, params: Mapping[str, float]) -> dict[str, float]:
        s = params["alpha_N"] + params["alpha_D"]
        a = params["alpha_D"] / s if s > 0 else float("nan")
        return {"a": a, "b": 1.0 - a}
