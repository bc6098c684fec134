"""The base class of laws fitted with the log-space Huber engine.

A law says which columns it reads, how a batch of internal parameter vectors ``theta`` maps to
log-predictions (an :class:`~xent_fitters.engine.Problem`), its default grid of starts, and how
``theta`` maps to the formula's own parameters. :meth:`HuberLaw.fit` does the rest: data checks,
global search, the convergence check, bootstrap, diagnostics and the :class:`FitResult`.

Subclasses define their own ``__init__`` (with literal defaults) so ``xent info`` can read the
options statically; they pass them on to :meth:`HuberLaw._setup`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import BadParameterError, FitError
from xent_core.validate import choice, flag, integer, positive

from .data import load_columns
from .diagnostics import regression_metrics
from .engine import (
    Problem,
    bootstrap_fit,
    check_bootstrap_size,
    exhaustive_search,
    global_search,
    polish,
)
from .identify import at_bounds, bound_warnings, check_design, check_finite
from .likelihood import bootstrap_likelihood, fit_huber_likelihood
from .options import bootstrap_option, level_option, seed_option
from .result import FitResult, summarise_samples

SEARCHES = ("halving", "full", "exhaustive")
#: "huber": sum of Huber losses of log residuals; "huber-likelihood": Huber density, free scale
OBJECTIVES = ("huber", "huber-likelihood")


def make_grid(grid: Any, names: Sequence[str]) -> np.ndarray:
    """A start grid from an (S, k) array or a dict ``{name: values}`` (Cartesian product)."""
    if isinstance(grid, Mapping):
        unknown = [k for k in grid if k not in names]
        missing = [k for k in names if k not in grid]
        if unknown or missing:
            raise BadParameterError(
                f"grid keys must be exactly the internal parameters {list(names)}"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
            )
        try:
            axes = [np.atleast_1d(np.asarray(grid[k], dtype=np.float64)) for k in names]
        except (TypeError, ValueError) as exc:
            raise BadParameterError(f"grid values must be numbers: {exc}") from None
        arr = np.array(list(itertools.product(*axes)), dtype=np.float64)
        if not np.isfinite(arr).all():
            raise BadParameterError("grid has NaN/inf values")
        return arr
    try:
        arr = np.atleast_2d(np.asarray(grid, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise BadParameterError(
            f"grid must be an (S, {len(names)}) array or a dict of values per parameter: {exc}"
        ) from None
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise BadParameterError(
            f"grid must be (S, {len(names)}) over {list(names)} or a dict of values per "
            f"parameter, got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise BadParameterError("grid has NaN/inf values")
    return arr


def _scalar_or_array(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


class HuberLaw:
    """Shared fitting procedure; subclasses describe one law (see module docstring)."""

    #: canonical name, input columns, target column, internal parameter names
    law_name: str = ""
    input_names: tuple[str, ...] = ()
    target: str = "loss"
    internal_names: tuple[str, ...] = ()
    #: public parameter names, in the order results list them
    param_names: tuple[str, ...] = ()
    #: iteration cap of the batched search and of each scipy polish
    max_iterations: int = 1000
    #: what data would identify a parameter that ends on its bound (``{inputs}`` is filled in)
    bound_hint: str = (
        "add runs over a wider range of {inputs} (more distinct values of each), or fit a "
        "simpler law"
    )

    def __init__(
        self,
        delta: float = 1e-3,
        grid: Any = None,
        bootstrap: int = 0,
        seed: int | None = 0,
        level: float = 0.95,
        search: str = "halving",
        n_polish: int = 8,
        progress: bool = False,
        objective: str = "huber",
    ) -> None:
        """The engine options every law shares (laws without options of their own inherit it).

        Args:
            delta: Huber threshold on the log residuals (> 0).
            grid: starts, as a dict over the law's internal names or an (S, k) array (None: the
                law's default grid).
            bootstrap: number of bootstrap refits for standard errors and intervals (0: off).
            seed: random seed of the bootstrap.
            level: coverage of the percentile intervals, in (0, 1).
            search: ``"halving"`` (fast), ``"full"`` (every start to convergence) or
                ``"exhaustive"`` (scipy from every start).
            n_polish: number of end points refined with scipy.
            progress: show a progress bar during the bootstrap.
            objective: ``"huber"`` (sum of Huber losses of the log residuals) or
                ``"huber-likelihood"`` (Huber density with a free scale, as Besiroglu et al.).
        """
        self._setup(
            delta=delta,
            grid=grid,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            search=search,
            n_polish=n_polish,
            progress=progress,
            objective=objective,
        )

    def _setup(
        self,
        *,
        delta: float,
        grid: Any,
        bootstrap: int,
        seed: int | None,
        level: float,
        search: str,
        n_polish: int,
        progress: bool,
        objective: str = "huber",
    ) -> None:
        self.objective = choice("objective", objective, OBJECTIVES)
        self.delta = positive("delta", delta)
        self.bootstrap = bootstrap_option(bootstrap)
        self.level = level_option(level)
        self.search = choice("search", search, SEARCHES)
        self.n_polish = integer("n_polish", n_polish, low=1)
        self.seed = seed_option(seed)
        self.progress = flag("progress", progress)
        self.grid = None if grid is None else make_grid(grid, self.internal_names)

    # ------------------------------------------------------------------ what a law defines
    def load(self, data: Any, columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        """Checked columns of ``data`` (inputs and target), all > 0."""
        return load_columns(
            data,
            (*self.input_names, self.target),
            columns=columns,
            min_rows=len(self.internal_names) + 1,
            law=self.law_name,
        )

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        raise NotImplementedError

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        """Internal ``theta`` (k,) to the formula's parameters."""
        raise NotImplementedError

    def derived(self, params: Mapping[str, float]) -> dict[str, float]:
        """Quantities computed from the parameters (e.g. compute-optimal exponents)."""
        return {}

    def varying_inputs(self) -> tuple[str, ...]:
        """The inputs that must take at least two values for the law to be identifiable."""
        return self.input_names

    #: ``predict_fn(params, **inputs)`` and ``compute_optimal_fn(params, C)`` stored on results
    predict_fn: Callable[..., Any] | None = None
    compute_optimal_fn: Callable[..., Any] | None = None
    plot_fn: Callable[..., Any] | None = None
    result_class: type[FitResult] = FitResult

    # ------------------------------------------------------------------ the procedure
    def fit(
        self,
        data: Any,
        *,
        columns: Mapping[str, str] | None = None,
        heldout: Any = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        progress: bool | None = None,
    ) -> FitResult:
        """Fit the law to ``data`` (dict of columns, DataFrame or CSV path).

        ``columns`` maps the law's names to your column names (``{"N": "params"}``); ``heldout``
        is data in the same format scored with the fitted law (``heldout_r2``, ...);
        ``bootstrap``, ``seed`` and ``progress`` override the options given at construction.
        """
        B = self.bootstrap if bootstrap is None else bootstrap_option(bootstrap)
        if seed is not None:
            seed = seed_option(seed)
        cols = self.load(data, columns)
        problem = self.problem(cols)  # the law's own checks of the data come first
        check_design(
            self.law_name,
            {k: cols[k] for k in self.input_names},
            cols[self.target],
            len(self.internal_names),
            must_vary=self.varying_inputs(),
            target_name=self.target,
        )
        theta, f, converged, info, starts = self._search(problem, cols)
        scale = None
        if converged and self.objective == "huber-likelihood":
            lik = fit_huber_likelihood(problem, theta)
            theta, f, converged, scale = lik.theta, lik.nll, lik.converged, lik.sigma
            info = {**info, "likelihood": lik.message}
            starts = theta[None, :]
        if not converged:
            raise FitError(
                f"{self.law_name}: the fit did not converge ({info.get('message', '')}); "
                "the data may not determine every parameter: try more points, a wider grid, or "
                "a simpler law"
            )
        params = self.to_params(theta)
        if not all(np.isfinite(v) for v in params.values()):
            raise FitError(f"{self.law_name}: the fit ran off to non-finite parameters {params}")
        derived = self.derived(params)
        check_finite(self.law_name, "derived values", derived)
        self._check_optimum(params, cols)
        inputs = {k: cols[k] for k in self.input_names}
        pred = np.asarray(self.predict_fn(params, **inputs), dtype=np.float64)  # type: ignore[misc]
        metrics: dict[str, float] = {
            "objective": float(f),
            **regression_metrics(cols[self.target], pred),
            "n_points": float(problem.n),
            "converged": 1.0,
            "delta": self.delta,
        }
        if scale is not None:
            metrics["scale"] = scale
        if heldout is not None:
            h = self.load(heldout, columns)
            hp = self.predict_fn(params, **{k: h[k] for k in self.input_names})  # type: ignore[misc]
            metrics.update(
                {f"heldout_{k}": v for k, v in regression_metrics(h[self.target], hp).items()}
            )
            metrics["heldout_n_points"] = float(len(h[self.target]))
        result = self.result_class(
            model=self.law_name,
            params=params,
            metrics=metrics,
            derived=derived,
            level=self.level,
            data={k: cols[k] for k in (*self.input_names, self.target)},
            target=self.target,
            extra={
                "objective": self.objective,
                "search": info,
                "internal": dict(zip(self.internal_names, map(float, theta))),
            },
            predict_fn=self.predict_fn,
            compute_optimal_fn=self.compute_optimal_fn,
            plot_fn=self.plot_fn,
        )
        result.warnings = self._bound_warnings(problem, theta, params)
        if B:
            self._bootstrap(result, problem, starts, B, seed, progress)
        return result

    def _check_optimum(self, params: Mapping[str, float], cols: Mapping[str, np.ndarray]) -> None:
        """Refuse a law whose compute-optimal allocation is not finite and positive, at the
        data's own compute (C = 6ND) and at the budgets ``xent fit`` tabulates."""
        if self.compute_optimal_fn is None:
            return
        budgets = [1e21, 1e22, 1e23, 1e24, 1e25]
        if "N" in cols and "D" in cols:
            with np.errstate(over="ignore"):
                c_data = 6.0 * cols["N"] * cols["D"]
            if not np.isfinite(c_data).all():
                raise FitError(
                    f"{self.law_name}: the compute C = 6ND of the data overflows float64 (N and D "
                    f"up to {cols['N'].max():g} and {cols['D'].max():g}); give N and D in their "
                    "natural units (parameters, tokens)"
                )
            budgets.extend([float(c_data.min()), float(c_data.max())])
        with np.errstate(all="ignore"):
            n, d = self.compute_optimal_fn(params, np.asarray(budgets))
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        check_finite(self.law_name, "compute-optimal values", {"N_opt": n, "D_opt": d})
        if not ((n > 0).all() and (d > 0).all()):
            raise FitError(f"{self.law_name}: the fitted law gives non-positive N_opt or D_opt")

    def _bound_warnings(
        self, problem: Problem, theta: np.ndarray, params: Mapping[str, float]
    ) -> list[str]:
        hits = at_bounds(problem.names, theta, problem.lower, problem.upper)
        public = {}
        for name in problem.names:
            for cand in (name, name.upper(), name.removeprefix("log_")):
                if cand in params:
                    public[name] = cand
                    break
        hint = self.bound_hint.format(inputs=" and ".join(self.input_names))
        return bound_warnings(self.law_name, hits, params, hint, public=public, stacklevel=5)

    def _search(
        self, problem: Problem, cols: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, float, bool, dict[str, Any], np.ndarray]:
        grid = self.grid if self.grid is not None else self.default_grid(cols)
        if self.search == "exhaustive":
            theta, f = exhaustive_search(problem, grid, maxiter=self.max_iterations)
            theta, f, ok, msg = _repolish(problem, theta, f, self.max_iterations)
            starts = theta[None, :]
            info = {"strategy": "exhaustive", "n_starts": len(grid), "message": msg}
        else:
            sr = global_search(
                problem,
                grid,
                n_polish=self.n_polish,
                strategy=self.search,
                maxiter=self.max_iterations,
            )
            theta, f, ok, msg = sr.theta, sr.f, sr.converged, sr.message
            starts = sr.candidates[: min(3, len(sr.candidates))]
            info = {
                "strategy": self.search,
                "n_starts": sr.n_starts,
                "n_polished": sr.n_polished,
                "message": msg,
            }
        return theta, f, ok or _stationary(problem, theta, f), info, starts

    def _bootstrap(
        self,
        result: FitResult,
        problem: Problem,
        starts: np.ndarray,
        B: int,
        seed: int | None,
        progress: bool | None,
    ) -> None:
        width = len(result.params) + len(result.derived)
        # the samples, the (B, width) table of parameters and derived values, and its summaries
        check_bootstrap_size(B, 8.0 * (problem.k + 3 * width), self.law_name)
        refit = bootstrap_likelihood if self.objective == "huber-likelihood" else bootstrap_fit
        samples, conv = refit(
            problem,
            starts[0] if refit is bootstrap_likelihood else starts,
            B,
            seed=self.seed if seed is None else seed,
            progress=self.progress if progress is None else progress,
        )
        names = (*result.params, *result.derived)
        arr = np.empty((len(samples), len(names)))
        for i, th in enumerate(samples):
            p = self.to_params(th)
            arr[i] = [*p.values(), *self.derived(p).values()]
        result.bootstrap, result.bootstrap_names = arr, tuple(names)
        result.stderr, result.intervals = summarise_samples(names, arr, result.level)
        result.metrics["n_bootstrap"] = float(B)
        result.metrics["bootstrap_converged"] = float(np.mean(conv))


def _stationary(problem: Problem, theta: np.ndarray, f: float) -> bool:
    """True when the projected gradient at ``theta`` is negligible next to the objective."""
    _, g = problem.value_and_grad(theta[None, :])
    pg = np.abs(problem.clip(theta - g[0]) - theta).max()
    return bool(np.isfinite(f) and pg <= 1e-6 * max(abs(f), 1e-12) + 1e-12)


def _repolish(
    problem: Problem, theta: np.ndarray, f: float, maxiter: int
) -> tuple[np.ndarray, float, bool, str]:
    th, f2, ok, msg = polish(problem, theta, maxiter=maxiter)
    if f2 <= f:
        return th, f2, ok, msg
    return theta, f, ok, msg


def lse_bounds(names: Sequence[str], exponents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Default box: log coefficients in [-50, 80], exponents in [0, 10]."""
    lo = np.array([0.0 if n in exponents else -50.0 for n in names])
    hi = np.array([10.0 if n in exponents else 80.0 for n in names])
    return lo, hi


def as_output(x: np.ndarray) -> Any:
    """A float for 0-d results, the array otherwise."""
    return _scalar_or_array(np.asarray(x, dtype=np.float64))
