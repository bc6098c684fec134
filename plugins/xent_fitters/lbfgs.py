"""Batched projected L-BFGS: one minimisation per row of a (S, k) array of starts, in numpy.

Each iteration computes the L-BFGS direction of every active start (two-loop recursion), freezes
the coordinates that would leave the box, and runs a projected backtracking line search on all
starts at once (:func:`_line_search`); a start stops on its own when its projected gradient or
its relative decrease is negligible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from xent_core import FitError

from .threads import _single_threaded

if TYPE_CHECKING:
    from .engine import Problem


@dataclass
class BatchResult:
    """End points of a batched minimisation."""

    theta: np.ndarray  # (S, k)
    f: np.ndarray  # (S,)
    converged: np.ndarray  # (S,) bool
    nit: np.ndarray  # (S,) iterations used
    n_evals: int = 0  # batched objective evaluations


def _two_loop(
    g: np.ndarray, s_hist: np.ndarray, y_hist: np.ndarray, rho: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Batched L-BFGS two-loop recursion. Histories are (m, S, k) ring buffers, newest last."""
    m = s_hist.shape[0]
    q = g.copy()
    alpha = np.zeros((m, g.shape[0]))
    for j in range(m - 1, -1, -1):
        valid = j >= m - count
        a = rho[j] * np.einsum("sk,sk->s", s_hist[j], q)
        a = np.where(valid, a, 0.0)
        alpha[j] = a
        q -= a[:, None] * y_hist[j]
    yy = np.einsum("sk,sk->s", y_hist[-1], y_hist[-1])
    sy = np.einsum("sk,sk->s", s_hist[-1], y_hist[-1])
    gamma = np.where((count > 0) & (yy > 0), sy / np.where(yy > 0, yy, 1.0), 1.0)
    r = q * gamma[:, None]
    for j in range(m):
        valid = j >= m - count
        b = rho[j] * np.einsum("sk,sk->s", y_hist[j], r)
        r += np.where(valid, alpha[j] - b, 0.0)[:, None] * s_hist[j]
    return -r


@_single_threaded
def minimize_batched(
    problem: Problem,
    theta0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    maxiter: int = 500,
    pgtol: float = 1e-10,
    ftol: float = 1e-13,
    memory: int = 10,
    chunk: int | None = None,
    callback: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> BatchResult:
    """Minimise ``problem`` from every row of ``theta0`` (S, k) at once (projected L-BFGS).

    Each start stops on its own when its projected gradient is below ``pgtol`` or the relative
    decrease of its objective falls below ``ftol``; only active starts are evaluated.
    ``weights`` (n,) or (S, n) weight the points per start (bootstrap counts).
    ``chunk`` bounds the number of starts evaluated together (memory).
    """
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    S, k = theta0.shape
    if k != problem.k:
        raise FitError(f"starts have {k} parameters, the law has {problem.k} ({problem.names})")
    if chunk is None:
        chunk = max(1, int(4_000_000 // max(problem.n, 1)))
    if S > chunk:
        parts = [
            minimize_batched(
                problem,
                theta0[i : i + chunk],
                weights=None if weights is None or weights.ndim == 1 else weights[i : i + chunk],
                maxiter=maxiter,
                pgtol=pgtol,
                ftol=ftol,
                memory=memory,
                chunk=chunk,
            )
            for i in range(0, S, chunk)
        ]
        return BatchResult(
            theta=np.concatenate([p.theta for p in parts]),
            f=np.concatenate([p.f for p in parts]),
            converged=np.concatenate([p.converged for p in parts]),
            nit=np.concatenate([p.nit for p in parts]),
            n_evals=sum(p.n_evals for p in parts),
        )

    def fg(th: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = None if weights is None else (weights if weights.ndim == 1 else weights[idx])
        return problem.value_and_grad(th, w)

    x = problem.clip(theta0.copy())
    all_idx = np.arange(S)
    f, g = fg(x, all_idx)
    n_evals = 1
    s_hist = np.zeros((memory, S, k))
    y_hist = np.zeros((memory, S, k))
    rho = np.zeros((memory, S))
    count = np.zeros(S, dtype=np.int64)
    active = np.isfinite(f)
    converged = np.zeros(S, dtype=bool)
    nit = np.zeros(S, dtype=np.int64)
    lo, hi = problem.lower, problem.upper

    def projected_grad_norm(xa: np.ndarray, ga: np.ndarray) -> np.ndarray:
        return np.abs(problem.clip(xa - ga) - xa).max(axis=1)

    pg = projected_grad_norm(x, g)
    done = pg <= pgtol
    converged |= done & active
    active &= ~done

    for it in range(maxiter):
        if callback is not None:
            callback(it, x, f, active)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xa, fa, ga = x[idx], f[idx], g[idx]
        d = _two_loop(ga, s_hist[:, idx], y_hist[:, idx], rho[:, idx], count[idx])
        d, bad = _projected_direction(xa, ga, d, lo, hi)
        count[idx[bad]] = 0  # not a descent direction: steepest descent, memory dropped
        first = count[idx] == 0
        t = np.where(first, np.minimum(1.0, 1.0 / np.maximum(np.abs(d).max(axis=1), 1e-300)), 1.0)
        x_new, f_new, g_new, failed, evals = _line_search(
            lambda xt, p, idx=idx: fg(xt, idx[p]), problem.clip, xa, fa, ga, d, t
        )
        n_evals += evals
        step = x_new - xa
        yv = g_new - ga
        sy = np.einsum("sk,sk->s", step, yv)
        upd = (~failed) & (sy > 1e-16 * np.maximum(np.einsum("sk,sk->s", yv, yv), 1e-300))
        if upd.any():
            _push_memory(s_hist, y_hist, rho, count, idx[upd], step[upd], yv[upd], sy[upd])
        rel = (fa - f_new) / np.maximum(np.maximum(np.abs(fa), np.abs(f_new)), 1e-300)
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        nit[idx] += 1
        pg = projected_grad_norm(x_new, g_new)
        stop_ok = (pg <= pgtol) | ((rel <= ftol) & ~failed)
        # a failed line search right after a steepest-descent step means no progress is possible
        stop_stuck = failed & first
        converged[idx[stop_ok | stop_stuck]] = True
        active[idx[stop_ok | stop_stuck]] = False
        count[idx[failed & ~first]] = 0  # retry once with steepest descent
    return BatchResult(theta=x, f=f, converged=converged, nit=nit, n_evals=n_evals)


def _projected_direction(
    xa: np.ndarray, ga: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``d`` with the coordinates that would leave the box frozen; rows that are not descent
    directions fall back to steepest descent (``bad`` marks them)."""
    d = np.where(((xa <= lo) & (d < 0)) | ((xa >= hi) & (d > 0)), 0.0, d)
    bad = ~(np.einsum("sk,sk->s", ga, d) < 0)
    if bad.any():
        sd = -ga[bad]
        d[bad] = np.where(((xa[bad] <= lo) & (sd < 0)) | ((xa[bad] >= hi) & (sd > 0)), 0.0, sd)
    return d, bad


def _line_search(
    fg: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    clip: Callable[[np.ndarray], np.ndarray],
    xa: np.ndarray,
    fa: np.ndarray,
    ga: np.ndarray,
    d: np.ndarray,
    t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Projected backtracking (Armijo, c = 1e-4) from every row at once, halving ``t`` up to 40
    times. ``fg(x, rows)`` evaluates the rows still searching. Returns the accepted points, their
    values and gradients, the rows with no acceptable step (``failed``) and the evaluations."""
    t = t.copy()
    pending = np.ones(len(xa), dtype=bool)
    x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
    n_evals = 0
    for _ in range(40):
        p = np.flatnonzero(pending)
        if p.size == 0:
            break
        xt = clip(xa[p] + t[p, None] * d[p])
        ft, gt = fg(xt, p)
        n_evals += 1
        decrease = np.einsum("sk,sk->s", ga[p], xt - xa[p])
        ok = np.isfinite(ft) & (ft <= fa[p] + 1e-4 * decrease)
        acc = p[ok]
        x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
        pending[acc] = False
        t[p[~ok]] *= 0.5
    return x_new, f_new, g_new, pending, n_evals


def _push_memory(
    s_hist: np.ndarray,
    y_hist: np.ndarray,
    rho: np.ndarray,
    count: np.ndarray,
    rows: np.ndarray,
    step: np.ndarray,
    yv: np.ndarray,
    sy: np.ndarray,
) -> None:
    """Append one (s, y) pair to the L-BFGS memory of each of ``rows`` (oldest pair dropped)."""
    s_hist[:, rows] = np.roll(s_hist[:, rows], -1, axis=0)
    y_hist[:, rows] = np.roll(y_hist[:, rows], -1, axis=0)
    rho[:, rows] = np.roll(rho[:, rows], -1, axis=0)
    s_hist[-1, rows] = step
    y_hist[-1, rows] = yv
    rho[-1, rows] = 1.0 / sy
    count[rows] = np.minimum(count[rows] + 1, s_hist.shape[0])
