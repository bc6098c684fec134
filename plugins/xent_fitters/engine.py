"""The fitting engine: a log-space Huber objective minimised for many starts at once.

Every loss law here is fitted the same way (Hoffmann et al. 2022, Besiroglu et al. 2024):

    minimise  sum_i w_i * huber_delta( log_pred(theta; x_i) - log y_i )   subject to lo <= theta <= hi

with ``huber_delta(r) = r^2/2`` for ``|r| <= delta`` and ``delta * (|r| - delta/2)`` beyond.
A law supplies ``log_predict(theta)`` for a *batch* of parameter vectors ``theta`` (S, k) and a
vector-Jacobian product, so the objective and its analytic gradient are evaluated for all S starts
(or all bootstrap replicates) in a few numpy array operations.

Global search (:func:`global_search`) runs a batched projected L-BFGS on every start of a grid
(4,500 for Chinchilla's grid), keeps the distinct best end points, and polishes only those with
``scipy.optimize.minimize(method="L-BFGS-B")``. The polish starts from the batched optimum of a
start, so it finds the same local optimum the per-start scipy search finds from that start; the
test-suite and ``benchmarks/fit_chinchilla.py`` check the result equals the exhaustive search.

The batched L-BFGS lives in :mod:`~xent_fitters.lbfgs` and the BLAS thread control in
:mod:`~xent_fitters.threads` (both re-exported here).

Bootstrap (:func:`bootstrap_fit`) resamples points as multinomial counts ``w_i``: the weighted
objective equals the objective on the resampled data set, so B replicates are fitted together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xent_core import BadParameterError, FitError

from .lbfgs import BatchResult as BatchResult  # re-exported: engine is the public entry
from .lbfgs import minimize_batched
from .threads import _single_threaded
from .threads import single_thread_blas as single_thread_blas  # re-exported

#: ``log_predict(theta (S, k)) -> (log_pred (S, n), vjp)`` with ``vjp(u (S, n)) -> (S, k)``
#: returning ``sum_i u[s, i] * d log_pred[s, i] / d theta[s, :]``.
LogPredict = Callable[[np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss ``r^2/2`` inside ``|r| <= delta``, ``delta (|r| - delta/2)`` outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclass
class Problem:
    """One log-space Huber fitting problem.

    ``log_predict`` maps a batch of parameter vectors to log-predictions and their VJP;
    ``log_y`` are the log targets; ``lower``/``upper`` the box bounds of ``theta``.
    """

    log_predict: LogPredict
    log_y: np.ndarray
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    delta: float = 1e-3

    def __post_init__(self) -> None:
        self.log_y = np.asarray(self.log_y, dtype=np.float64)
        k = len(self.names)
        self.lower = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), (k,)).copy()
        self.upper = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), (k,)).copy()
        if not self.delta > 0:
            raise FitError(f"huber delta must be > 0, got {self.delta}")

    @property
    def n(self) -> int:
        return int(self.log_y.shape[0])

    @property
    def k(self) -> int:
        return len(self.names)

    def value_and_grad(
        self, theta: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective (S,) and gradient (S, k) at ``theta`` (S, k); ``weights`` (n,) or (S, n).

        Starts are evaluated in blocks of about 64k (start, point) pairs so the temporaries stay
        in cache (four times faster than one big block on a 2-core machine).
        """
        theta = np.atleast_2d(theta)
        S = theta.shape[0]
        block = max(1, 65536 // max(self.n, 1))
        if S <= block:
            return self._value_and_grad(theta, weights)
        f = np.empty(S)
        g = np.empty((S, self.k))
        per_start = weights is not None and weights.ndim == 2
        for i in range(0, S, block):
            w = weights[i : i + block] if per_start else weights
            f[i : i + block], g[i : i + block] = self._value_and_grad(theta[i : i + block], w)
        return f, g

    def _value_and_grad(
        self, theta: np.ndarray, weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # trial steps may reach extreme parameters: overflow there gives a non-finite objective,
        # which the line search rejects (below), so numpy's warnings are noise
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            lp, vjp = self.log_predict(theta)
            r = lp - self.log_y
            u = np.clip(r, -self.delta, self.delta)  # huber'(r)
            h = u * (r - 0.5 * u)  # huber(r): r^2/2 inside, delta(|r| - delta/2) outside
            if weights is not None:
                h *= weights
                u *= weights
            f = h.sum(axis=1)
            g = vjp(u)
        bad = ~np.isfinite(f) | ~np.isfinite(g).all(axis=1)
        if bad.any():
            f = np.where(bad, np.inf, f)
            g = np.where(bad[:, None], 0.0, g)
        return f, g

    def clip(self, theta: np.ndarray) -> np.ndarray:
        return np.clip(theta, self.lower, self.upper)


# --------------------------------------------------------------------------- scipy polish
@_single_threaded
def polish(
    problem: Problem,
    theta0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    maxiter: int = 15000,
    ftol: float = 1e-15,
    gtol: float = 1e-12,
) -> tuple[np.ndarray, float, bool, str]:
    """Refine one start with ``scipy.optimize.minimize(method="L-BFGS-B")``, analytic gradient."""
    from scipy.optimize import minimize

    def fun(th: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = problem.value_and_grad(th[None, :], weights)
        return float(f[0]), g[0]

    res = minimize(
        fun,
        np.clip(np.asarray(theta0, dtype=np.float64), problem.lower, problem.upper),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(problem.lower, problem.upper)),
        options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxls": 50},
    )
    return np.asarray(res.x), float(res.fun), bool(res.success), str(res.message)


# --------------------------------------------------------------------------- global search
@dataclass
class SearchResult:
    """Best parameters from a grid of starts, with a summary of the search."""

    theta: np.ndarray
    f: float
    converged: bool
    message: str
    n_starts: int
    n_polished: int
    candidates: np.ndarray = field(repr=False)  # distinct polished optima, best first (m, k)
    candidate_f: np.ndarray = field(repr=False)


def _distinct(theta: np.ndarray, f: np.ndarray, limit: int, rtol: float = 1e-3) -> np.ndarray:
    """Indices of up to ``limit`` best rows, skipping near-duplicates of rows already taken."""
    order = np.argsort(f, kind="stable")
    order = order[np.isfinite(f[order])]
    taken: list[int] = []
    scale = np.maximum(np.abs(theta[order]).max(axis=0), 1.0)
    for i in order:
        if len(taken) >= limit:
            break
        if taken:
            diff = np.abs(theta[taken] - theta[i]) / scale
            if (diff.max(axis=1) <= rtol).any():
                continue
        taken.append(int(i))
    return np.asarray(taken, dtype=np.int64)


@_single_threaded
def global_search(
    problem: Problem,
    grid: np.ndarray,
    *,
    n_polish: int = 8,
    strategy: str = "halving",
    keep: float = 0.25,
    min_survivors: int = 16,
    rounds: Sequence[int] = (1, 2, 4, 8, 16),
    maxiter: int = 1000,
) -> SearchResult:
    """Best local optimum over the starts ``grid`` (S, k).

    ``strategy="halving"`` (default): batched L-BFGS on every start for ``rounds[0]`` iterations,
    keep the best ``keep`` fraction (at least ``min_survivors``), continue them for the next
    round, and so on; the survivors then run to convergence. (On the Chinchilla data and on 12
    synthetic data sets of 40-300 points this found the optimum of ``strategy="full"`` every
    time, at a 20-40th of its cost.) ``strategy="full"``: every start runs
    to convergence. Either way the ``n_polish`` best distinct end points are polished with scipy
    L-BFGS-B and the best is returned.
    """
    grid = np.atleast_2d(np.asarray(grid, dtype=np.float64))
    if grid.shape[1] != problem.k:
        raise FitError(
            f"the start grid has {grid.shape[1]} columns, the law has {problem.k} parameters "
            f"{problem.names}"
        )
    if strategy not in ("halving", "full"):
        raise FitError(f"unknown search strategy {strategy!r}; use 'halving' or 'full'")
    theta = problem.clip(grid.copy())
    f = np.full(len(grid), np.inf)
    conv = np.zeros(len(grid), dtype=bool)
    idx = np.arange(len(grid))
    if strategy == "halving":
        for iters in rounds:
            res = minimize_batched(problem, theta[idx], maxiter=iters)
            theta[idx], f[idx], conv[idx] = res.theta, res.f, res.converged
            if len(idx) <= min_survivors:
                break
            n_keep = max(min_survivors, int(np.ceil(len(idx) * keep)))
            idx = idx[np.argsort(f[idx], kind="stable")[:n_keep]]
    res = minimize_batched(problem, theta[idx], maxiter=maxiter)
    theta[idx], f[idx], conv[idx] = res.theta, res.f, res.converged
    if not np.isfinite(f[idx]).any():
        raise FitError(
            "the objective is not finite at any start of the grid; check the data and the grid"
        )
    picks = idx[_distinct(theta[idx], f[idx], n_polish)]
    polished = [polish(problem, theta[i], maxiter=maxiter) for i in picks]
    fs = np.array([p[1] for p in polished])
    thetas = np.stack([p[0] for p in polished])
    # a polish can only improve on its start; keep the batched point if scipy stopped worse
    worse = ~(fs <= f[picks])
    thetas[worse], fs[worse] = theta[picks][worse], f[picks][worse]
    order = np.argsort(fs, kind="stable")
    best = int(order[0])
    ok, msg = polished[best][2], polished[best][3]
    return SearchResult(
        theta=thetas[best],
        f=float(fs[best]),
        converged=ok or bool(conv[picks[best]]),
        message=msg,
        n_starts=len(grid),
        n_polished=len(picks),
        candidates=thetas[order],
        candidate_f=fs[order],
    )


@_single_threaded
def exhaustive_search(
    problem: Problem, grid: np.ndarray, maxiter: int = 15000
) -> tuple[np.ndarray, float]:
    """Reference: scipy L-BFGS-B (its default tolerances, analytic gradient) from every start of
    ``grid`` separately; the best end point. This is the straightforward per-start search."""
    from scipy.optimize import minimize

    def fun(th: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = problem.value_and_grad(th[None, :])
        return float(f[0]), g[0]

    bounds = list(zip(problem.lower, problem.upper))
    best_theta, best_f = None, np.inf
    for start in np.atleast_2d(grid):
        x0 = np.clip(start, problem.lower, problem.upper)
        res = minimize(
            fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter}
        )
        if res.fun < best_f:
            best_theta, best_f = np.asarray(res.x), float(res.fun)
    if best_theta is None:
        raise FitError("no start of the grid gave a finite objective")
    return best_theta, best_f


# --------------------------------------------------------------------------- bootstrap
def bootstrap_counts(n: int, B: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) multinomial counts: how often each point appears in each resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=B).astype(np.float64)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), else ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_bootstrap_size(B: int, bytes_per_replicate: float, what: str) -> None:
    """Refuse ``B`` replicates whose results need more than half the available memory.

    Args:
        B: the number of bootstrap replicates asked for.
        bytes_per_replicate: what one replicate keeps until the end (samples, derived values).
        what: the law's name, for the message.
    """
    need = B * bytes_per_replicate
    free = available_memory()
    if free is not None and need > 0.5 * free:
        fits = int(0.5 * free // max(bytes_per_replicate, 1.0))
        raise BadParameterError(
            f"{what}: bootstrap={B} would keep about {need / 2**30:.1f} GiB of replicates, more "
            f"than half the {free / 2**30:.1f} GiB of memory available; use at most {fits} "
            "(1,000 to 10,000 resamples are plenty for 95% intervals)"
        )


@_single_threaded
def bootstrap_fit(
    problem: Problem,
    starts: np.ndarray,
    B: int,
    *,
    seed: int | None = 0,
    progress: bool = False,
    chunk: int = 250,
    maxiter: int = 500,
    counts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Refit ``problem`` on ``B`` resamples of its points.

    Each replicate starts from every row of ``starts`` (the optimum and the other distinct optima
    of the full fit) and keeps its best end point. ``counts`` (B, n) gives the resamples as
    multiplicities (default: drawn from ``seed``). Returns ``(samples (B, k), converged (B,))``.
    """
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    rng = np.random.default_rng(seed)
    if counts is not None and counts.shape != (B, problem.n):
        raise FitError(f"counts must be ({B}, {problem.n}), got {counts.shape}")
    samples = np.empty((B, problem.k))
    conv = np.zeros(B, dtype=bool)
    m = len(starts)
    with _progress(progress, B, "bootstrap") as advance:
        for lo in range(0, B, chunk):
            # counts are drawn per chunk (the same stream as one (B, n) draw), so memory does
            # not grow with B and Ctrl-C is honoured between chunks
            w = (
                counts[lo : lo + chunk]
                if counts is not None
                else bootstrap_counts(problem.n, min(chunk, B - lo), rng)
            )
            b = len(w)
            th0 = np.repeat(starts[None, :, :], b, axis=0).reshape(b * m, problem.k)
            wr = np.repeat(w, m, axis=0)
            res = minimize_batched(problem, th0, weights=wr, maxiter=maxiter)
            f = res.f.reshape(b, m)
            pick = np.argmin(np.where(np.isfinite(f), f, np.inf), axis=1)
            rows = np.arange(b) * m + pick
            samples[lo : lo + b] = res.theta[rows]
            conv[lo : lo + b] = res.converged[rows]
            advance(b)
    return samples, conv


class _progress:
    """A rich progress bar when asked for (and rich is importable), else a no-op."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self.enabled:
            try:
                from rich.progress import Progress

                self._bar = Progress(transient=True)
                self._bar.start()
                task = self._bar.add_task(self.label, total=self.total)
                return lambda k: self._bar.advance(task, k)
            except ImportError:  # pragma: no cover
                self._bar = None
        return lambda k: None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# --------------------------------------------------------------------------- LSE models
#: one term of a log-sum-exp model: ``theta[coef] + sum_p theta[p] * column_p`` (coef may be
#: None for a term without a free log-coefficient).
Term = tuple[int | None, Sequence[tuple[int, np.ndarray]]]


def lse_model(terms: Sequence[Term], k: int) -> LogPredict:
    """``log_pred = logsumexp_j (theta[c_j] + sum_p theta[p] * x_jp)`` with its VJP.

    Every term is affine in ``theta`` (a log coefficient plus exponents times log inputs), which
    covers ``E + A/N^alpha + B/D^beta`` (terms ``a - alpha log N``, ``b - beta log D``, ``e``)
    and its relatives; the parametrisation keeps every coefficient positive.
    """
    spec = [
        (coef, [(int(p), np.asarray(col, dtype=np.float64)) for p, col in factors])
        for coef, factors in terms
    ]

    def log_predict(theta: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        S = theta.shape[0]
        ts = []
        for coef, factors in spec:
            t: Any = theta[:, coef, None] if coef is not None else np.zeros((S, 1))
            for p, col in factors:
                t = t + theta[:, p, None] * col
            ts.append(t)
        top = ts[0]
        for t in ts[1:]:
            top = np.maximum(top, t)
        exps = [np.exp(t - top) for t in ts]
        tot = exps[0]
        for e in exps[1:]:
            tot = tot + e
        lp = top + np.log(tot)

        def vjp(u: np.ndarray) -> np.ndarray:
            g = np.zeros((S, k))
            v = u / tot
            for (coef, factors), e in zip(spec, exps):
                w = v * e
                if coef is not None:
                    g[:, coef] += w.sum(axis=1)
                for p, col in factors:
                    g[:, p] += w @ col
            return g

        return lp, vjp

    return log_predict
