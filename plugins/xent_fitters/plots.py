"""Matplotlib panels for fit results (imported only when a plot is asked for)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _inputs(result: Any) -> dict[str, np.ndarray]:
    return {k: v for k, v in result.data.items() if k != result.target}


def observed_predicted_panel(ax: Any, result: Any) -> None:
    """Observed against predicted target, with the identity line."""
    obs = result.data[result.target]
    pred = np.asarray(result.predict(**_inputs(result)), dtype=float)
    ax.scatter(pred, obs, s=12, alpha=0.7)
    lo, hi = float(min(pred.min(), obs.min())), float(max(pred.max(), obs.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"predicted {result.target}")
    ax.set_ylabel(f"observed {result.target}")
    r2 = result.metrics.get("r2", float("nan"))
    ax.set_title(f"{result.model}: R$^2$ = {r2:.4f}")


def residual_panel(ax: Any, result: Any, x: str) -> None:
    """Log residuals against input ``x`` (log axis)."""
    res = result.residuals()
    ax.scatter(result.data[x], res, s=12, alpha=0.7)
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("log(observed) - log(predicted)")
    ax.set_title("residuals")


def frontier_panel(ax: Any, result: Any) -> None:
    """N_opt(C) and D_opt(C) from ``compute_optimal`` with bootstrap bands, and the data."""
    N, D = result.data["N"], result.data["D"]
    C = 6.0 * N * D
    grid = np.logspace(np.log10(C.min()), np.log10(C.max()) + 2, 60)
    n_opt, d_opt = result.compute_optimal(grid)
    ax.scatter(C, N, s=8, alpha=0.3, color="C0", label="runs (N)")
    ax.plot(grid, n_opt, color="C0", label="N_opt(C)")
    ax.plot(grid, d_opt, color="C1", label="D_opt(C)")
    if result.bootstrap is not None:
        band = result.compute_optimal_interval(grid)
        ax.fill_between(grid, *band["N_opt"], color="C0", alpha=0.2)
        ax.fill_between(grid, *band["D_opt"], color="C1", alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C = 6ND (FLOP)")
    ax.set_ylabel("parameters / tokens")
    a, b = result.derived.get("a", float("nan")), result.derived.get("b", float("nan"))
    ax.set_title(f"compute-optimal: N ~ C^{a:.3f}, D ~ C^{b:.3f}")
    ax.legend(fontsize=8)


def curve_panel(
    ax: Any,
    x: np.ndarray,
    y: np.ndarray,
    fit_x: np.ndarray,
    fit_y: np.ndarray,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> None:
    """Data points and a fitted curve on log-log axes."""
    ax.scatter(x, y, s=14, alpha=0.8, label="data")
    ax.plot(fit_x, fit_y, color="C1", label="fit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
