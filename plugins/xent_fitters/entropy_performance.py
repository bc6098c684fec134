"""Cui et al.'s entropy-performance law R = -a exp(H) + b for RL on language models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xent_core import BadParameterError, FitError

from .data import load_columns
from .diagnostics import regression_metrics
from .engine import check_bootstrap_size
from .law import as_output
from .options import bootstrap_option, level_option, seed_option
from .result import FitResult, summarise_samples


def predict_performance(params: Mapping[str, float], *, H: Any) -> Any:
    """``R = -a exp(H) + b``."""
    return as_output(-params["a"] * np.exp(np.asarray(H, dtype=np.float64)) + params["b"])


def weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched weighted least squares ``y ~ c + m x``; ``w`` (B, n) -> ``(m, c)`` each (B,)."""
    sw = w.sum(axis=1)
    mx = (w @ x) / sw
    my = (w @ y) / sw
    sxx = (w @ (x * x)) / sw - mx * mx
    sxy = (w @ (x * y)) / sw - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sxy / sxx
    return m, my - m * mx


def plot_entropy(result: Any, *, plt: Any, **_: Any) -> Any:
    H, R = result.data["H"], result.data["R"]
    grid = np.linspace(0.0, H.max() * 1.05, 100)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(H, R, s=14, label="data")
    ax.plot(grid, result.predict(H=grid), color="C1", label="R = -a e^H + b")
    ax.axhline(result.derived["ceiling"], color="k", ls=":", lw=1, label="ceiling b - a")
    ax.set_xlabel("policy entropy H (nats)")
    ax.set_ylabel("performance R")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class EntropyPerformanceLaw:
    """Entropy-performance law of RL on LMs: R = -a * exp(H) + b, ceiling b - a at H = 0.

    Formula: ``R = -a exp(H) + b`` between policy entropy ``H`` (nats) and performance ``R``;
    linear in ``exp(H)``, so fitted by ordinary least squares in closed form. When the entropy
    is exhausted (H = 0) the predicted performance ceiling is ``b - a`` (derived ``ceiling``).
    Bootstrap over points gives standard errors and percentile intervals.

    Columns: ``H``, ``R``. Fitted parameters: ``a``, ``b``.

    Args:
        bootstrap: number of bootstrap resamples of the points (0: off).
        seed: random seed of the bootstrap.
        level: coverage of the percentile intervals, in (0, 1).
    """

    citation = (
        "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
        "arXiv:2505.22617",
    )
    inputs = ("H",)
    law_name = "entropy-performance"
    target = "R"

    def __init__(self, bootstrap: int = 0, seed: int | None = 0, level: float = 0.95) -> None:
        self.bootstrap = bootstrap_option(bootstrap)
        self.seed, self.level = seed_option(seed), level_option(level)

    def load(self, data: Any, columns: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
        return load_columns(
            data, ("H", "R"), columns=columns, positive=False, min_rows=3, law=self.law_name
        )

    def fit(
        self,
        data: Any,
        *,
        columns: Mapping[str, str] | None = None,
        heldout: Any = None,
        bootstrap: int | None = None,
        seed: int | None = None,
    ) -> FitResult:
        """Fit ``a`` and ``b`` by least squares (see the class docstring)."""
        B = self.bootstrap if bootstrap is None else int(bootstrap)
        if B < 0 or B == 1:
            raise BadParameterError(f"bootstrap must be 0 (off) or >= 2, got {B}")
        cols = self.load(data, columns)
        x, y = np.exp(cols["H"]), cols["R"]
        if np.ptp(x) <= 1e-12 * np.abs(x).max():
            raise FitError(
                "entropy-performance: all entropies are equal; a and b are not determined"
            )
        if np.all(y == y[0]):
            raise FitError(
                f"entropy-performance: the performance R is constant ({y[0]:g} in every row), so "
                "a and the ceiling are not determined; fit checkpoints whose R varies"
            )
        m, c = weighted_line(x, y, np.ones((1, len(x))))
        params = {"a": float(-m[0]), "b": float(c[0])}
        pred = predict_performance(params, H=cols["H"])
        metrics = {
            **regression_metrics(y, pred),
            "objective": float(np.sum((y - pred) ** 2)),
            "n_points": float(len(y)),
            "converged": 1.0,
        }
        if heldout is not None:
            h = self.load(heldout, columns)
            hm = regression_metrics(h["R"], predict_performance(params, H=h["H"]))
            metrics.update({f"heldout_{k}": v for k, v in hm.items()})
        result = FitResult(
            model=self.law_name,
            params=params,
            metrics=metrics,
            derived={"ceiling": params["b"] - params["a"]},
            level=self.level,
            data=dict(cols),
            target="R",
            predict_fn=predict_performance,
            plot_fn=plot_entropy,
        )
        if B:
            rng = np.random.default_rng(self.seed if seed is None else seed)
            n = len(y)
            check_bootstrap_size(B, 16.0 * n + 48.0, "entropy-performance")
            w = rng.multinomial(n, np.full(n, 1.0 / n), size=B).astype(np.float64)
            mb, cb = weighted_line(x, y, w)
            arr = np.column_stack([-mb, cb, cb + mb])
            names = ("a", "b", "ceiling")
            result.bootstrap, result.bootstrap_names = arr, names
            result.stderr, result.intervals = summarise_samples(names, arr, self.level)
            result.metrics["n_bootstrap"] = float(B)
        return result
