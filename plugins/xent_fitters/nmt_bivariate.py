"""Ghorbani et al.'s encoder-decoder law L(Ne, Nd) = alpha (Ne_bar/Ne)^pe (Nd_bar/Nd)^pd + L_inf."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from xent_core import BadParameterError

from .engine import Problem, lse_model
from .law import HuberLaw, as_output, lse_bounds
from .result import FitResult


def predict_nmt(
    params: Mapping[str, float], *, Ne: Any, Nd: Any, Ne_bar: float, Nd_bar: float
) -> Any:
    """``alpha (Ne_bar/Ne)^p_e (Nd_bar/Nd)^p_d + L_inf``."""
    Ne = np.asarray(Ne, dtype=np.float64)
    Nd = np.asarray(Nd, dtype=np.float64)
    out = (
        params["alpha"] * (Ne_bar / Ne) ** params["p_e"] * (Nd_bar / Nd) ** params["p_d"]
        + params["L_inf"]
    )
    return as_output(out)


def optimal_split(params: Mapping[str, float], N: Any) -> tuple[Any, Any]:
    """``(Ne, Nd)`` minimising the loss for ``Ne + Nd = N``: ``Ne = N p_e / (p_e + p_d)``."""
    N = np.asarray(N, dtype=np.float64)
    f = params["p_e"] / (params["p_e"] + params["p_d"])
    return as_output(f * N), as_output((1.0 - f) * N)


@dataclass
class NMTFitResult(FitResult):
    """A ``nmt-bivariate`` result: adds :meth:`optimal_split` (no compute-optimal under 6ND)."""

    def optimal_split(self, N: Any) -> tuple[Any, Any]:
        """``(Ne, Nd)`` with ``Ne + Nd = N`` that minimise the fitted loss."""
        return optimal_split(self.params, N)


class NMTBivariateLaw(HuberLaw):
    """Encoder-decoder NMT law L(Ne, Nd) = alpha (Ne_bar/Ne)^pe (Nd_bar/Nd)^pd + L_inf.

    Formula: ``L = alpha * (Ne_bar/Ne)^p_e * (Nd_bar/Nd)^p_d + L_inf`` with encoder and decoder
    parameter counts ``Ne``, ``Nd`` and fixed reference sizes ``Ne_bar``, ``Nd_bar`` (default:
    the geometric means of the data, so ``alpha`` is the reducible loss there); fitted as
    ``log L = LSE(log alpha + p_e log(Ne_bar/Ne) + p_d log(Nd_bar/Nd), log L_inf)`` with a
    Huber loss (``delta``). For a total ``N = Ne + Nd`` the loss is smallest at
    ``Ne = N p_e/(p_e+p_d)``: ``fit.optimal_split(N)``; derived ``encoder_fraction``.

    Columns: ``Ne``, ``Nd``, ``loss``. Fitted parameters: ``alpha``, ``p_e``, ``p_d``,
    ``L_inf``.

    Args:
        Ne_bar: reference encoder size (None: geometric mean of the data's ``Ne``).
        Nd_bar: reference decoder size (None: geometric mean of the data's ``Nd``).
        **engine: the engine options of ``chinchilla`` (``delta``, ``grid``, ``bootstrap``, ...).
    """

    citation = ("Scaling Laws for Neural Machine Translation", "arXiv:2109.07740")
    inputs = ("Ne", "Nd")

    law_name = "nmt-bivariate"
    input_names = ("Ne", "Nd")
    internal_names = ("log_alpha", "p_e", "p_d", "log_L_inf")
    param_names = ("alpha", "p_e", "p_d", "L_inf")
    result_class = NMTFitResult

    def __init__(
        self,
        Ne_bar: float | None = None,
        Nd_bar: float | None = None,
        **engine: Any,
    ) -> None:
        for name, v in (("Ne_bar", Ne_bar), ("Nd_bar", Nd_bar)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise BadParameterError(f"{name} must be a positive number or None, got {v!r}")
        self.Ne_bar, self.Nd_bar = Ne_bar, Nd_bar
        super().__init__(**engine)

    def fit(self, data: Any, **kwargs: Any) -> FitResult:
        cols = self.load(data, kwargs.get("columns"))
        self._bars = (
            float(self.Ne_bar or np.exp(np.mean(np.log(cols["Ne"])))),
            float(self.Nd_bar or np.exp(np.mean(np.log(cols["Nd"])))),
        )
        self.predict_fn = functools.partial(predict_nmt, Ne_bar=self._bars[0], Nd_bar=self._bars[1])
        result = super().fit(data, **kwargs)
        result.extra["Ne_bar"], result.extra["Nd_bar"] = self._bars
        return result

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        xe = np.log(self._bars[0]) - np.log(cols["Ne"])
        xd = np.log(self._bars[1]) - np.log(cols["Nd"])
        lo, hi = lse_bounds(self.internal_names, ("p_e", "p_d"))
        return Problem(
            lse_model([(0, [(1, xe), (2, xd)]), (3, [])], 4),
            np.log(cols["loss"]),
            self.internal_names,
            lo,
            hi,
            self.delta,
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        y = cols["loss"]
        rows = []
        for frac in (0.1, 0.5, 0.8, 0.95):
            L_inf = frac * y.min()
            for pe in (0.05, 0.2, 0.5, 1.0):
                for pd in (0.05, 0.2, 0.5, 1.0):
                    for scale in (0.5, 1.0, 2.0):
                        alpha = max(float(np.median(y)) - L_inf, 1e-3 * y.min()) * scale
                        rows.append((np.log(alpha), pe, pd, np.log(L_inf)))
        return np.asarray(rows)

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        la, pe, pd, li = map(float, theta)
        return {"alpha": float(np.exp(la)), "p_e": pe, "p_d": pd, "L_inf": float(np.exp(li))}

    def derived(self, params: Mapping[str, float]) -> dict[str, float]:
        s = params["p_e"] + params["p_d"]
        return {"encoder_fraction": params["p_e"] / s if s > 0 else float("nan")}
