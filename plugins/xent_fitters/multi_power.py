"""The Multi-Power Law (MPL): the whole loss curve under any learning-rate schedule.

    L(t) = L0 + A * S1(t)^(-alpha) - LD(t)
    S1(t) = sum_{tau=0}^{t} eta_tau                       (warmup included: S1 + S_W of the paper)
    LD(t) = B * sum_{k=k0}^{t} (eta_{k-1} - eta_k) * G(eta_k^(-gamma) * S_k(t))
    S_k(t) = sum_{tau=k}^{t} eta_tau,        G(x) = 1 - (C * x + 1)^(-beta)

Luo et al., "A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules"
(arXiv:2503.12811). ``k0`` is 1 by default: the decay term runs over the whole schedule, warmup
included, which is how the published parameters were fitted (a positive ``warmup_steps`` W starts
it at step W instead, the paper's ``eta_0`` being the peak learning rate at the end of warmup).

Evaluating LD at the n sampled steps costs O(n * K) where K is the number of steps whose learning
rate changes (constant stretches contribute nothing); rows are processed in blocks of bounded size
and the distances ``S_k(t)`` are cached for the fit, so every evaluation is a handful of
vectorised passes over those blocks, with the analytic Jacobian. The fit is a Huber regression of
log losses solved by a bounded trust-region Gauss-Newton method (``scipy.optimize.least_squares``,
which minimises exactly the summed Huber objective of the engine), a few dozen evaluations.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import BadParameterError, FitError
from xent_core.validate import integer, optional, positive

from .curve_metrics import curve_metrics, mean_metrics
from .curve_plots import plot_curve_result
from .curve_result import CurveFitResult
from .curves import check_curves, check_given_params
from .identify import at_bounds, bound_warnings
from .options import bootstrap_option
from .result import summarise_samples
from .robust_fit import huber_least_squares

PARAM_NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
_THETA_NAMES = ("L0", "log_A", "alpha", "log_B", "log_C", "beta", "gamma")
_BLOCK_ELEMENTS = 1 << 21  # ~2M float64 per block (16 MB)
_CACHE_ELEMENTS = 12_000_000  # cache the distance blocks of a fit up to ~100 MB


def decay_start(lr: np.ndarray, warmup_steps: int | None) -> int:
    """First step ``k0`` of the decay sum: ``max(1, W)``; ``None`` detects the end of warmup
    (the first step whose learning rate does not exceed the previous one)."""
    if warmup_steps is None:
        up = np.flatnonzero(lr[1:] <= lr[:-1])
        return int(up[0] + 1) if up.size else len(lr)
    return max(1, int(warmup_steps))


class _DecayBlocks:
    """The decay sum of one curve at its sampled steps, in blocks of rows.

    Block b covers sorted rows ``rows`` and the first ``ncol`` changing steps ``k`` (those
    ``<= max t``); its distances ``S_k(t) = P[t] - P[k-1]`` (clipped at 0 for ``k > t``, where
    ``G(0) = 0``) are cached when ``cache`` is set.
    """

    def __init__(
        self, lr: np.ndarray, step: np.ndarray, k0: int, cache: bool, dtype: Any = np.float64
    ) -> None:
        self.dtype = np.dtype(dtype)
        P = np.cumsum(lr)
        k = np.arange(k0, len(lr))
        delta = lr[k - 1] - lr[k]
        changing = delta != 0.0
        self.k = k[changing]
        self.delta = delta[changing]
        self.log_eta = np.log(lr[self.k])
        self.P_before = P[self.k - 1]
        self.n = len(step)
        order = np.argsort(step, kind="stable")
        t_sorted = step[order]
        P_t = P[t_sorted]
        ncols = np.searchsorted(self.k, t_sorted, side="right")
        self.blocks: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None]] = []
        i = 0
        while i < self.n:
            j = i + 1
            while j < self.n and (j + 1 - i) * max(int(ncols[j]), 1) <= _BLOCK_ELEMENTS:
                j += 1
            nc = int(ncols[j - 1])
            if nc > 0:
                rows = order[i:j]
                pt = P_t[i:j]
                dist = self._distances(pt, nc) if cache else None
                self.blocks.append((rows, nc, pt, dist))
            i = j

    @property
    def elements(self) -> int:
        return sum(len(rows) * nc for rows, nc, _, _ in self.blocks)

    def _distances(self, pt: np.ndarray, nc: int) -> np.ndarray:
        d = pt[:, None] - self.P_before[None, :nc]
        np.maximum(d, 0.0, out=d)
        return d.astype(self.dtype, copy=False)

    def evaluate(
        self, C: float, beta: float, gamma: float, grad: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``sum_k delta_k G(...)`` at each sampled step and, with ``grad``, its derivatives
        w.r.t. ``(log C, beta, gamma)`` as an (n, 3) array."""
        total = np.zeros(self.n)
        jac = np.zeros((self.n, 3)) if grad else None
        if not self.blocks:
            return total, jac
        # the elementwise work runs in self.dtype (float32 in fits: about twice as fast, 1e-7
        # relative error); the value's sums over k are accumulated in float64
        scale = (C * np.exp(-gamma * self.log_eta)).astype(self.dtype)
        f64 = np.float64
        for rows, nc, pt, dist in self.blocks:
            x = self._distances(pt, nc) if dist is None else dist.copy()
            x *= scale[None, :nc]  # C * eta_k^-gamma * S_k(t)
            log_u = np.log1p(x)
            m = log_u * self.dtype.type(-beta)
            g = np.expm1(m)  # -G
            dk = self.delta[:nc]
            total[rows] = -(g.astype(f64, copy=False) @ dk)
            if jac is not None:
                # the Jacobian only steers the optimiser: its sums may run in self.dtype
                u_pow = np.exp(m, out=m)  # (1 + C x)^-beta
                # d/dlogC: beta * u^-beta * Cx/(1+Cx); d/dgamma: the same times -log eta_k
                x /= 1.0 + x
                x *= u_pow
                both = np.stack([dk, dk * self.log_eta[:nc]], axis=1).astype(self.dtype)
                q = x @ both
                jac[rows, 0] = beta * q[:, 0]
                jac[rows, 2] = -beta * q[:, 1]
                log_u *= u_pow  # d/dbeta: u^-beta * log u
                jac[rows, 1] = log_u @ both[:, 0]
        return total, jac


def mpl_predict(
    params: Mapping[str, float], lr: Any, step: Any, warmup_steps: int | None = 0
) -> np.ndarray:
    """Multi-Power Law losses at ``step`` for the per-step schedule ``lr`` (see module doc)."""
    c = check_curves([{"lr": lr, "step": step}], need_loss=False)[0]
    blocks = _DecayBlocks(c["lr"], c["step"], decay_start(c["lr"], warmup_steps), cache=False)
    ld, _ = blocks.evaluate(params["C"], params["beta"], params["gamma"])
    S1 = np.cumsum(c["lr"])[c["step"]]
    return params["L0"] + params["A"] * S1 ** (-params["alpha"]) - params["B"] * ld


class MultiPowerLaw:
    """Multi-Power Law: loss curves under any learning-rate schedule, from a few fitted runs.

    Formula::

        L(t) = L0 + A * S1(t)^(-alpha) - B * sum_k (eta_{k-1} - eta_k) * G(eta_k^(-gamma) S_k(t))
        S1(t) = sum_{tau<=t} eta_tau,  S_k(t) = sum_{tau=k}^{t} eta_tau,  G(x) = 1 - (C x + 1)^(-beta)

    ``fit(curves)`` takes a list of ``{"lr": per-step learning rates, "step": sampled steps,
    "loss": losses}`` and minimises the Huber loss (``huber_delta``) of log residuals summed over
    all points, starting from the best point of a grid over ``(C, beta, gamma)`` on which
    ``(L0, A, alpha, B)`` are fitted cheaply. ``fit.predict(lr=, step=)`` predicts any schedule;
    ``fit.evaluate(curves)`` scores held-out curves (R^2, MAE, RMSE, PredE, WorstE);
    ``MultiPowerLaw.from_params(L0=..., ...)`` evaluates given (e.g. published) parameters.

    Args:
        huber_delta: Huber threshold on the log residuals.
        warmup_steps: step the decay term starts at (0: the whole schedule, as the published
            fits; None: detect the end of warmup).
        bootstrap: refits on resampled points for standard errors and intervals (0: none).
        seed: random seed of the bootstrap.
        max_evals: evaluation budget of the final fit.
    """

    #: fits whole loss curves with their per-step LR schedule, not a table of runs
    input_format = "curves"
    citation = (
        "A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules",
        "arXiv:2503.12811",
    )
    param_names = PARAM_NAMES
    # start grid of the decay shape; on the MPL data every start of a 27-point grid reached
    # the same optimum as these 8 (see docs/scaling-laws-curves.md)
    _grid_C = (0.5, 3.0)
    _grid_beta = (0.3, 0.8)
    _grid_gamma = (0.4, 0.8)

    def __init__(
        self,
        huber_delta: float = 1e-3,
        warmup_steps: int | None = 0,
        bootstrap: int = 0,
        seed: int = 0,
        max_evals: int = 400,
    ) -> None:
        self.huber_delta = positive("huber_delta", huber_delta)
        self.warmup_steps = optional(integer, "warmup_steps", warmup_steps, low=0)
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed = integer("seed", seed, low=0)
        self.max_evals = integer("max_evals", max_evals, low=1)

    # ------------------------------------------------------------------ evaluation
    def predict_fn(self) -> Callable[..., np.ndarray]:
        """``predict(params, lr=, step=)`` with this law's ``warmup_steps``."""
        warmup = self.warmup_steps

        def predict(params: Mapping[str, float], *, lr: Any, step: Any) -> np.ndarray:
            return mpl_predict(params, lr, step, warmup)

        return predict

    def with_params(self, **params: float) -> CurveFitResult:
        """A result holding given parameters (e.g. the published ones), ready to evaluate."""
        p = check_given_params(params, PARAM_NAMES, "multi-power")
        if p["C"] < 0:
            raise BadParameterError(f"multi-power parameter 'C' must be >= 0, got {p['C']}")
        return CurveFitResult(
            model="multi-power",
            params=p,
            target="loss",
            extra={"warmup_steps": self.warmup_steps, "source": "given parameters"},
            predict_fn=self.predict_fn(),
            plot_fn=plot_curve_result,
        )

    @classmethod
    def from_params(cls, **params: float) -> CurveFitResult:
        """``MultiPowerLaw().with_params(**params)``."""
        return cls().with_params(**params)

    # ------------------------------------------------------------------ fitting
    def fit(self, curves: Any) -> CurveFitResult:
        """Fit the seven parameters to ``curves`` (list of ``{"lr", "step", "loss"}``)."""
        checked = check_curves(curves)
        n_points = sum(len(c["step"]) for c in checked)
        if n_points < len(PARAM_NAMES) + 1:
            raise FitError(
                f"multi-power: {n_points} loss points, at least {len(PARAM_NAMES) + 1} are needed"
            )
        design = _Design(checked, self.warmup_steps)
        if not design.has_decay:
            raise FitError(
                "multi-power: no curve has a decaying learning rate, so B, C, beta and gamma "
                "cannot be identified; include a decaying schedule (cosine, WSD, step)"
            )
        start = self._initial_theta(design)
        fit = huber_least_squares(
            design.log_pred_jac,
            np.log(design.y),
            start,
            design.lower,
            design.upper,
            self.huber_delta,
            max_evals=self.max_evals,
        )
        if not np.isfinite(fit.objective):
            raise FitError(f"multi-power: the fit did not reach a finite objective ({fit.message})")
        if not fit.converged:
            warnings.warn(f"multi-power: the fit stopped early: {fit.message}", stacklevel=2)
        result = self.with_params(**_params_from_theta(fit.theta))
        result.extra = {
            "warmup_steps": self.warmup_steps,
            "optimizer": fit.message,
            "n_evals": fit.n_evals,
        }
        per = [
            curve_metrics(c["loss"], result.predict(lr=c["lr"], step=c["step"])) for c in checked
        ]
        result.metrics = {
            "objective": fit.objective,
            **mean_metrics(per),
            "n_points": float(n_points),
            "n_curves": float(len(checked)),
            "converged": 1.0 if fit.converged else 0.0,
        }
        result.curves = checked
        hits = at_bounds(THETA_NAMES, fit.theta, design.lower, design.upper)
        result.warnings = bound_warnings(
            "multi-power",
            hits,
            result.params,
            "the decay shape (B, C, beta, gamma) needs curves whose learning rate decays in "
            "different ways: fit more schedules (e.g. WSD with several decay lengths, step "
            "drops, cosines of several lengths) or fix C, beta and gamma with with_params",
            public={"log_A": "A", "log_B": "B", "log_C": "C"},
        )
        if self.bootstrap:
            self._bootstrap(result, design, fit.theta)
        return result

    def _initial_theta(self, design: _Design) -> np.ndarray:
        """Grid over (C, beta, gamma); at each point fit (L0, A, alpha, B) with the decay shape
        fixed (one pass over the data per grid point); the best point starts the full fit."""
        y, log_S1 = design.y, design.log_S1
        log_y = np.log(y)
        ymin = float(y.min())
        best_f, best = np.inf, None
        for C in self._grid_C:
            for beta in self._grid_beta:
                for gamma in self._grid_gamma:
                    U, _ = design.decay(C, beta, gamma, grad=False)
                    sub = _four_param_log_pred_jac(log_S1, U)
                    for frac in (0.7, 0.9):
                        a0 = 0.5
                        s0 = np.array(
                            [
                                frac * ymin,
                                np.log(max(float(y[np.argmin(log_S1)]) - frac * ymin, 1e-3))
                                + a0 * float(log_S1.min()),
                                a0,
                                np.log(0.03 * ymin / design.peak_lr),
                            ]
                        )
                        fit = huber_least_squares(
                            sub,
                            log_y,
                            s0,
                            design.lower[:4],
                            design.upper[:4],
                            self.huber_delta,
                            max_evals=100,
                        )
                        if fit.objective < best_f:
                            best_f = fit.objective
                            best = np.r_[fit.theta, np.log(C), beta, gamma]
        if best is None:
            raise FitError("multi-power: no finite objective on the start grid")
        return best

    def _bootstrap(self, result: CurveFitResult, design: _Design, theta: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        n = len(design.y)
        samples = np.empty((self.bootstrap, len(PARAM_NAMES)))
        for b in range(self.bootstrap):
            w = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
            fit = huber_least_squares(
                design.log_pred_jac,
                np.log(design.y),
                theta,
                design.lower,
                design.upper,
                self.huber_delta,
                weights=w,
                max_evals=self.max_evals,
            )
            samples[b] = list(_params_from_theta(fit.theta).values())
        result.bootstrap = samples
        result.bootstrap_names = PARAM_NAMES
        result.stderr, result.intervals = summarise_samples(PARAM_NAMES, samples, result.level)


def _params_from_theta(theta: np.ndarray) -> dict[str, float]:
    L0, log_A, alpha, log_B, log_C, beta, gamma = (float(v) for v in theta)
    return {
        "L0": L0,
        "A": float(np.exp(log_A)),
        "alpha": alpha,
        "B": float(np.exp(log_B)),
        "C": float(np.exp(log_C)),
        "beta": beta,
        "gamma": gamma,
    }


def _four_param_log_pred_jac(
    log_S1: np.ndarray, U: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``log(L0 + A S1^-alpha - B U)`` and its Jacobian for theta = (L0, log A, alpha, log B)."""

    def log_pred_jac(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L0, log_A, alpha, log_B = theta
        power = np.exp(log_A - alpha * log_S1)
        decay = np.exp(log_B) * U
        pred = L0 + power - decay
        jac = np.stack([np.ones_like(pred), power, -power * log_S1, -decay], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(pred), jac / pred[:, None]

    return log_pred_jac


#: the fitted coordinates, in the order of ``_Design.lower``/``upper``
THETA_NAMES = ("L0", "log_A", "alpha", "log_B", "log_C", "beta", "gamma")


class _Design:
    """All fitted points of all curves: targets, S1, and the decay blocks of every curve."""

    def __init__(self, curves: Sequence[Mapping[str, Any]], warmup_steps: int | None) -> None:
        self.y = np.concatenate([c["loss"] for c in curves])
        self.log_S1 = np.log(np.concatenate([np.cumsum(c["lr"])[c["step"]] for c in curves]))
        self.peak_lr = max(float(np.max(c["lr"])) for c in curves)
        self.offsets = np.r_[0, np.cumsum([len(c["step"]) for c in curves])]
        starts = [decay_start(c["lr"], warmup_steps) for c in curves]
        blocks = [
            _DecayBlocks(c["lr"], c["step"], k0, cache=False, dtype=np.float32)
            for c, k0 in zip(curves, starts)
        ]
        if sum(b.elements for b in blocks) <= _CACHE_ELEMENTS:
            blocks = [
                _DecayBlocks(c["lr"], c["step"], k0, cache=True, dtype=np.float32)
                for c, k0 in zip(curves, starts)
            ]
        self.curve_blocks = blocks
        self.has_decay = any(bool((b.delta > 0).any()) for b in blocks)
        #                      L0    log_A  alpha  log_B  log_C  beta  gamma
        self.lower = np.array([0.0, -30.0, 1e-3, -30.0, -20.0, 1e-3, 0.0])
        self.upper = np.array([float(self.y.max()), 30.0, 5.0, 40.0, 20.0, 5.0, 5.0])

    def decay(self, C: float, beta: float, gamma: float, grad: bool) -> tuple[np.ndarray, Any]:
        """The decay sums of all points (and their (n, 3) Jacobian w.r.t. log C, beta, gamma)."""
        n = len(self.y)
        U = np.empty(n)
        J = np.empty((n, 3)) if grad else None
        for b, lo, hi in zip(self.curve_blocks, self.offsets[:-1], self.offsets[1:]):
            u, j = b.evaluate(C, beta, gamma, grad)
            U[lo:hi] = u
            if J is not None:
                J[lo:hi] = j
        return U, J

    def log_pred_jac(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log predictions at every point and their Jacobian (n, 7) w.r.t. theta =
        (L0, log A, alpha, log B, log C, beta, gamma)."""
        L0, log_A, alpha, log_B, log_C, beta, gamma = (float(v) for v in theta)
        U, J = self.decay(float(np.exp(log_C)), beta, gamma, grad=True)
        power = np.exp(log_A - alpha * self.log_S1)
        B = np.exp(log_B)
        pred = L0 + power - B * U
        jac = np.empty((len(self.y), 7))
        jac[:, 0] = 1.0
        jac[:, 1] = power
        jac[:, 2] = -power * self.log_S1
        jac[:, 3] = -B * U
        jac[:, 4:7] = -B * J
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(pred), jac / pred[:, None]
