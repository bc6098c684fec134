"""The scaling law with learning-rate annealing: a whole loss curve from two areas of the schedule.

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)
    S1(s) = sum_{i=0}^{s} eta_i                                   forward area
    S2(s) = sum_{i=k0}^{s} m_i,  m_i = lambda * m_{i-1} + (eta_{i-1} - eta_i),  m_{k0-1} = 0
                                                                  annealing area (momentum lambda)

Tissue et al., "Scaling Law with Learning Rate Annealing" (arXiv:2408.11029). The forward area
counts every step, warmup included; the annealing momentum starts at the end of warmup ``k0``
(detected as the first step whose learning rate does not exceed the previous one, or given as
``warmup_steps``), so the warmup's rise is not read as a negative annealing. A later re-warmup does
enter S2 with a negative sign, as in the paper. S1 and S2 are cumulative sums (S2 through a
first-order recursive filter), O(T) per curve; the four parameters are then fitted with the engine's
batched multi-start Huber search in log space.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import FitError
from xent_core.validate import integer, number, optional, positive

from .curve_metrics import curve_metrics, mean_metrics
from .curve_plots import plot_curve_result
from .curve_result import CurveFitResult
from .curves import check_curves, check_given_params
from .engine import Problem, bootstrap_fit, global_search
from .identify import at_bounds, bound_warnings
from .multi_power import decay_start
from .options import bootstrap_option
from .result import summarise_samples

PARAM_NAMES = ("L0", "A", "alpha", "C")
_THETA_NAMES = ("L0", "log_A", "alpha", "log_C")
_DECAY_FACTOR_GRID = (0.99, 0.995, 0.998, 0.999, 0.9995)


def annealing_areas(
    lr: np.ndarray, decay_factor: float, warmup_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Forward area S1 and annealing area S2 at every step of the schedule ``lr``."""
    from scipy.signal import lfilter

    lr = np.asarray(lr, dtype=np.float64)
    S1 = np.cumsum(lr)
    k0 = min(decay_start(lr, warmup_steps), len(lr))
    S2 = np.zeros(len(lr))
    if k0 < len(lr):
        drops = lr[k0 - 1 : -1] - lr[k0:]  # eta_{i-1} - eta_i for i = k0 .. T-1
        momentum = lfilter([1.0], [1.0, -decay_factor], drops)
        S2[k0:] = np.cumsum(momentum)
    return S1, S2


def lr_annealing_predict(
    params: Mapping[str, float],
    lr: Any,
    step: Any,
    decay_factor: float = 0.999,
    warmup_steps: int | None = None,
) -> np.ndarray:
    """Losses at ``step`` for the per-step schedule ``lr`` (see the module doc)."""
    c = check_curves([{"lr": lr, "step": step}], need_loss=False)[0]
    S1, S2 = annealing_areas(c["lr"], decay_factor, warmup_steps)
    s = c["step"]
    return params["L0"] + params["A"] * S1[s] ** (-params["alpha"]) - params["C"] * S2[s]


class LRAnnealingLaw:
    """Scaling law with LR annealing: L(s) = L0 + A*S1^-alpha - C*S2 over a whole loss curve.

    Formula::

        L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)
        S1(s) = sum_{i<=s} eta_i                    (forward area, warmup included)
        S2(s) = sum_{i=k0}^{s} m_i,  m_i = lambda * m_{i-1} + (eta_{i-1} - eta_i)   (annealing area)

    ``fit(curves)`` takes a list of ``{"lr": per-step learning rates, "step": sampled steps,
    "loss": losses}`` (one or two curves usually suffice) and minimises the summed Huber loss
    (``huber_delta``) of log residuals from a grid of starts; ``fit.predict(lr=, step=)`` predicts
    the curve of any other schedule; ``fit.evaluate(curves)`` scores held-out curves.

    Args:
        decay_factor: momentum lambda of the annealing area (None: the best of 0.99 .. 0.9995
            by the objective).
        warmup_steps: k0, the step the annealing area starts at (None: detected).
        huber_delta: Huber threshold on the log residuals.
        bootstrap: refits on resampled points for standard errors and intervals (0: none).
        seed: random seed of the bootstrap.
    """

    #: fits whole loss curves with their per-step LR schedule, not a table of runs
    input_format = "curves"
    citation = ("Scaling Law with Learning Rate Annealing", "arXiv:2408.11029")
    param_names = PARAM_NAMES

    def __init__(
        self,
        decay_factor: float | None = 0.999,
        warmup_steps: int | None = None,
        huber_delta: float = 1e-3,
        bootstrap: int = 0,
        seed: int = 0,
    ) -> None:
        self.decay_factor = optional(
            number, "decay_factor", decay_factor, low=0.0, high=1.0, high_open=True
        )
        self.warmup_steps = optional(integer, "warmup_steps", warmup_steps, low=0)
        self.huber_delta = positive("huber_delta", huber_delta)
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed = integer("seed", seed, low=0)

    # ------------------------------------------------------------------ evaluation
    def _result(self, params: dict[str, float], decay_factor: float) -> CurveFitResult:
        warmup = self.warmup_steps

        def predict(p: Mapping[str, float], *, lr: Any, step: Any) -> np.ndarray:
            return lr_annealing_predict(p, lr, step, decay_factor, warmup)

        return CurveFitResult(
            model="lr-annealing",
            params=params,
            target="loss",
            extra={"decay_factor": decay_factor, "warmup_steps": warmup},
            predict_fn=predict,
            plot_fn=plot_curve_result,
        )

    def with_params(self, **params: float) -> CurveFitResult:
        """A result holding given parameters ``L0, A, alpha, C`` (uses this law's lambda)."""
        p = check_given_params(params, PARAM_NAMES, "lr-annealing")
        return self._result(p, 0.999 if self.decay_factor is None else self.decay_factor)

    @classmethod
    def from_params(cls, decay_factor: float = 0.999, **params: float) -> CurveFitResult:
        """``LRAnnealingLaw(decay_factor).with_params(**params)``."""
        return cls(decay_factor=decay_factor).with_params(**params)

    # ------------------------------------------------------------------ fitting
    def fit(self, curves: Any) -> CurveFitResult:
        """Fit ``L0, A, alpha, C`` to ``curves`` (list of ``{"lr", "step", "loss"}``)."""
        checked = check_curves(curves)
        n_points = sum(len(c["step"]) for c in checked)
        if n_points < len(PARAM_NAMES) + 1:
            raise FitError(
                f"lr-annealing: {n_points} loss points, at least {len(PARAM_NAMES) + 1} are needed"
            )
        y = np.concatenate([c["loss"] for c in checked])
        factors = _DECAY_FACTOR_GRID if self.decay_factor is None else (self.decay_factor,)
        best = None
        for lam in factors:
            problem = self._problem(checked, y, lam)
            search = global_search(problem, _start_grid(y), n_polish=4)
            if best is None or search.f < best[1].f:
                best = (lam, search, problem)
        assert best is not None
        lam, search, problem = best
        if not np.isfinite(search.f):
            raise FitError("lr-annealing: the fit did not reach a finite objective")
        if not search.converged:
            warnings.warn(f"lr-annealing: the fit stopped early: {search.message}", stacklevel=2)
        result = self._result(_params_from_theta(search.theta), lam)
        result.extra.update(optimizer=search.message, n_starts=search.n_starts)
        per = [
            curve_metrics(c["loss"], result.predict(lr=c["lr"], step=c["step"])) for c in checked
        ]
        result.metrics = {
            "objective": search.f,
            **mean_metrics(per),
            "n_points": float(n_points),
            "n_curves": float(len(checked)),
            "converged": 1.0 if search.converged else 0.0,
        }
        result.curves = checked
        result.warnings = bound_warnings(
            "lr-annealing",
            at_bounds(problem.names, search.theta, problem.lower, problem.upper),
            result.params,
            "fit curves whose schedules differ more (a constant and a decaying one at least, "
            "over more steps)",
            public={"log_A": "A", "log_C": "C"},
        )
        if self.bootstrap:
            samples, _ = bootstrap_fit(
                problem, search.candidates[:3], self.bootstrap, seed=self.seed
            )
            params = np.array([list(_params_from_theta(th).values()) for th in samples])
            result.bootstrap = params
            result.bootstrap_names = PARAM_NAMES
            result.stderr, result.intervals = summarise_samples(PARAM_NAMES, params, result.level)
        return result

    def _problem(self, curves: Sequence[Mapping[str, Any]], y: np.ndarray, lam: float) -> Problem:
        log_S1, S2 = [], []
        for c in curves:
            a1, a2 = annealing_areas(c["lr"], lam, self.warmup_steps)
            log_S1.append(np.log(a1[c["step"]]))
            S2.append(a2[c["step"]])
        lower = np.array([0.0, -30.0, 1e-3, -30.0])
        upper = np.array([float(y.max()), 30.0, 5.0, 30.0])
        return Problem(
            _log_predict(np.concatenate(log_S1), np.concatenate(S2)),
            np.log(y),
            _THETA_NAMES,
            lower,
            upper,
            self.huber_delta,
        )


def _params_from_theta(theta: np.ndarray) -> dict[str, float]:
    L0, log_A, alpha, log_C = (float(v) for v in theta)
    return {"L0": L0, "A": float(np.exp(log_A)), "alpha": alpha, "C": float(np.exp(log_C))}


def _start_grid(y: np.ndarray) -> np.ndarray:
    ymin = float(y.min())
    L0 = ymin * np.array([0.5, 0.7, 0.85, 0.95])
    log_A = np.array([-2.0, -0.5, 1.0])
    alpha = np.array([0.2, 0.5, 0.8])
    log_C = np.array([-3.0, -1.0, 1.0, 3.0])
    return np.stack(np.meshgrid(L0, log_A, alpha, log_C, indexing="ij"), axis=-1).reshape(-1, 4)


def _log_predict(
    log_S1: np.ndarray, S2: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """Batched ``log(L0 + A S1^-alpha - C S2)`` for theta (S, 4) = (L0, log A, alpha, log C)."""

    def log_predict(theta: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        L0, log_A, alpha, log_C = (theta[:, j : j + 1] for j in range(4))
        power = np.exp(log_A - alpha * log_S1)
        anneal = np.exp(log_C) * S2
        pred = L0 + power - anneal
        with np.errstate(invalid="ignore", divide="ignore"):
            lp = np.log(pred)
            inv = 1.0 / pred

        def vjp(u: np.ndarray) -> np.ndarray:
            q = u * inv
            qp = q * power
            return np.stack(
                [q.sum(1), qp.sum(1), -(qp * log_S1).sum(1), -(q * anneal).sum(1)], axis=1
            )

        return lp, vjp

    return log_predict
