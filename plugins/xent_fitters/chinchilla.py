"""The Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta and its compute-optimal allocation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .engine import Problem, lse_model
from .law import HuberLaw, as_output, lse_bounds

#: Hoffmann et al.'s initialisation grid (as in Besiroglu et al.'s replication): 4,500 starts over
#: (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e).
CHINCHILLA_GRID: dict[str, list[float]] = {
    "a": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
    "b": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
    "e": [-1.0, -0.5, 0.0, 0.5, 1.0],
    "alpha": [0.0, 0.5, 1.0, 1.5, 2.0],
    "beta": [0.0, 0.5, 1.0, 1.5, 2.0],
}


def predict_loss(params: Mapping[str, float], *, N: Any, D: Any) -> Any:
    """``E + A / N^alpha + B / D^beta``."""
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    out = params["E"] + params["A"] * N ** -params["alpha"] + params["B"] * D ** -params["beta"]
    return as_output(out)


def compute_optimal_exponents(params: Mapping[str, float]) -> dict[str, float]:
    """``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)`` and the constant ``G``.

    Under C = 6ND, N_opt = G (C/6)^a and D_opt = (C/6)^b / G with
    G = (alpha A / (beta B))^(1/(alpha+beta)).
    """
    al, be = params["alpha"], params["beta"]
    s = al + be
    if not (al > 0 and be > 0):  # no trade-off between N and D: no finite optimum
        nan = float("nan")
        return {"a": be / s if s > 0 else nan, "b": al / s if s > 0 else nan, "G": nan}
    G = (al * params["A"] / (be * params["B"])) ** (1.0 / s)
    return {"a": be / s, "b": al / s, "G": G}


def compute_optimal(params: Mapping[str, float], C: Any) -> tuple[Any, Any]:
    """``(N_opt, D_opt)`` minimising ``L(N, D)`` subject to ``C = 6 N D``."""
    e = compute_optimal_exponents(params)
    c6 = np.asarray(C, dtype=np.float64) / 6.0
    return as_output(e["G"] * c6 ** e["a"]), as_output(c6 ** e["b"] / e["G"])


def plot_chinchilla(result: Any, *, plt: Any, **_: Any) -> Any:
    """Observed vs predicted, residuals against N, and the compute-optimal frontier."""
    from .plots import frontier_panel, observed_predicted_panel, residual_panel

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    observed_predicted_panel(axes[0], result)
    residual_panel(axes[1], result, "N")
    frontier_panel(axes[2], result)
    fig.tight_layout()
    return fig


class ChinchillaLaw(HuberLaw):
    """Chinchilla scaling law L(N, D) = E + A/N^alpha + B/D^beta with compute-optimal N and D.

    Formula: ``L(N, D) = E + A / N^alpha + B / D^beta``; fitted as
    ``log L = LSE(a - alpha log N, b - beta log D, e)`` (A = e^a, B = e^b, E = e^e) over the
    4,500-start grid of Hoffmann et al. (or ``grid``). Objective: ``objective="huber"`` (the
    default) minimises the *sum* of Huber losses (``delta``) of the log residuals;
    ``"huber-likelihood"`` their negative log-likelihood under a Huber density with a free scale,
    as Besiroglu et al. did (it reproduces their A 482.01, B 2085.43, E 1.82, alpha 0.3478 on
    the bundled data). ``compute_optimal(C)`` gives (N_opt, D_opt) under C = 6ND, with
    exponents ``a = beta/(alpha+beta)`` and ``b = alpha/(alpha+beta)`` (derived quantities).

    Columns: ``N`` (parameters), ``D`` (tokens), ``loss``. Fitted parameters: ``E``, ``A``,
    ``B``, ``alpha``, ``beta``; the internal names of ``grid`` are ``a, b, e, alpha, beta``.
    The engine options (``delta``, ``grid``, ``bootstrap``, ...) are documented in
    ``HuberLaw.__init__``.
    """

    citation = (
        ("Training Compute-Optimal Large Language Models", "arXiv:2203.15556"),
        ("Chinchilla Scaling: A replication attempt", "arXiv:2404.10102"),
    )
    inputs = ("N", "D")

    law_name = "chinchilla"
    input_names = ("N", "D")
    internal_names = ("a", "b", "e", "alpha", "beta")
    param_names = ("E", "A", "B", "alpha", "beta")

    predict_fn = staticmethod(predict_loss)
    compute_optimal_fn = staticmethod(compute_optimal)
    plot_fn = staticmethod(plot_chinchilla)

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        lN, lD = np.log(cols["N"]), np.log(cols["D"])
        lo, hi = lse_bounds(self.internal_names, ("alpha", "beta"))
        return Problem(
            lse_model([(0, [(3, -lN)]), (1, [(4, -lD)]), (2, [])], 5),
            np.log(cols["loss"]),
            self.internal_names,
            lo,
            hi,
            self.delta,
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        from .law import make_grid

        return make_grid(CHINCHILLA_GRID, self.internal_names)

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        a, b, e, al, be = map(float, theta)
        return {
            "E": float(np.exp(e)),
            "A": float(np.exp(a)),
            "B": float(np.exp(b)),
            "alpha": al,
            "beta": be,
        }

    def derived(self, params: Mapping[str, float]) -> dict[str, float]:
        return compute_optimal_exponents(params)
