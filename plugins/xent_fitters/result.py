"""``FitResult``: what every scaling-law fit returns.

A result holds the fitted parameters keyed by the formula's own symbols, their bootstrap standard
errors and percentile intervals, derived quantities (compute-optimal exponents, ...), goodness-of-fit
metrics, and the functions that make it useful: ``predict(**inputs)`` and, where a law has one,
``compute_optimal(C)``. Both delegate to functions stored on the result that take the parameter
dict first, so the same function evaluated on every bootstrap sample gives intervals for
predictions (:meth:`FitResult.predict_interval`).

Laws with a different ``predict`` signature (tuples, curves) subclass ``FitResult`` or simply pass
a ``predict_fn`` of their own; ``plot_fn`` replaces the default observed-vs-predicted plot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import XentError

PredictFn = Callable[..., Any]  # predict_fn(params: dict[str, float], **inputs) -> array
OptimalFn = Callable[..., Any]  # compute_optimal_fn(params, C) -> (N_opt, D_opt)
PlotFn = Callable[..., Any]  # plot_fn(result, fig) -> None (draws into a matplotlib figure)


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, tuples and non-finite floats into JSON-safe values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    return repr(value)


def require_matplotlib() -> Any:
    """Import ``matplotlib`` (Agg backend) or raise a XentError that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise XentError(
            "plotting needs matplotlib, which is not installed: pip install 'xent[plot]'"
        ) from exc
    return plt


@dataclass
class FitResult:
    """The outcome of fitting a scaling law.

    Attributes
    ----------
    model:
        the law's canonical name (``"chinchilla"``, ...).
    params:
        fitted parameters keyed by the formula's own symbols (``E``, ``A``, ``alpha``, ...).
    stderr, intervals:
        bootstrap standard errors and percentile intervals (level ``level``, 95% by default),
        keyed like ``params`` and ``derived``; empty when no bootstrap was run.
    metrics:
        goodness of fit: ``objective``, ``r2``, ``mae``, ``rmse``, ``n_points``, ``converged``
        (1.0/0.0), and whatever else the law reports (``heldout_r2``, ...).
    derived:
        quantities computed from the parameters (compute-optimal exponents ``a``, ``b``, ...).
    bootstrap:
        optional ``(B, k)`` array of bootstrap parameter samples, columns ``bootstrap_names``.
    data:
        the (float) columns the law was fitted on, kept for plots and residuals.
    extra:
        JSON-able law-specific details (grid search summary, per-budget minima, ...).
    warnings:
        what the fit could not determine (parameters that ended on the bounds of the search,
        and what data would identify them); empty when the fit has nothing to flag.
    """

    model: str
    params: dict[str, float]
    stderr: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    derived: dict[str, float] = field(default_factory=dict)
    level: float = 0.95
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    bootstrap_names: tuple[str, ...] = ()
    data: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    target: str = "loss"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    predict_fn: PredictFn | None = field(default=None, repr=False, compare=False)
    compute_optimal_fn: OptimalFn | None = field(default=None, repr=False, compare=False)
    plot_fn: PlotFn | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ prediction
    def predict(self, **inputs: Any) -> Any:
        """Evaluate the fitted law at ``inputs`` (the law's input columns, e.g. ``N=``, ``D=``)."""
        if self.predict_fn is None:
            raise XentError(f"this {self.model!r} result has no prediction function")
        return self.predict_fn(self.params, **inputs)

    def compute_optimal(self, C: Any) -> tuple[Any, Any]:
        """``(N_opt, D_opt)`` that minimise the loss at compute ``C`` (where the law defines it)."""
        if self.compute_optimal_fn is None:
            raise XentError(f"compute_optimal(C) does not apply to the {self.model!r} law")
        return self.compute_optimal_fn(self.params, C)

    def bootstrap_params(self) -> list[dict[str, float]]:
        """The bootstrap samples as parameter dicts (empty when no bootstrap was run)."""
        if self.bootstrap is None:
            return []
        return [dict(zip(self.bootstrap_names, map(float, row))) for row in self.bootstrap]

    def _percentiles(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tail = 100.0 * (1.0 - self.level) / 2.0
        return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(
            samples, 100.0 - tail, axis=0
        )

    def _sample_dicts(self) -> Iterator[dict[str, float]]:
        """The bootstrap samples as parameter dicts, one at a time (no list of B dicts)."""
        if self.bootstrap is None or not len(self.bootstrap):
            raise XentError("no bootstrap samples: fit with bootstrap=B (B >= 2) for intervals")
        for row in self.bootstrap:
            yield dict(zip(self.bootstrap_names, map(float, row)))

    def predict_interval(self, **inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval (level ``level``) of the prediction over the bootstrap samples."""
        if self.predict_fn is None:
            raise XentError(f"this {self.model!r} result has no prediction function")
        preds = _stack(
            (np.asarray(self.predict_fn(p, **inputs), dtype=float) for p in self._sample_dicts()),
            len(self.bootstrap),  # type: ignore[arg-type]
        )
        return self._percentiles(preds)

    def compute_optimal_interval(self, C: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Percentile intervals of ``N_opt`` and ``D_opt`` at ``C`` over the bootstrap samples."""
        if self.compute_optimal_fn is None:
            raise XentError(f"compute_optimal(C) does not apply to the {self.model!r} law")
        pairs = (self.compute_optimal_fn(p, C) for p in self._sample_dicts())
        both = _stack(
            (np.stack([np.asarray(a, float), np.asarray(b, float)]) for a, b in pairs),
            len(self.bootstrap),  # type: ignore[arg-type]
        )
        return {"N_opt": self._percentiles(both[:, 0]), "D_opt": self._percentiles(both[:, 1])}

    # ------------------------------------------------------------------ diagnostics
    @property
    def converged(self) -> bool:
        return bool(self.metrics.get("converged", 1.0))

    def residuals(self) -> np.ndarray:
        """``log(observed) - log(predicted)`` on the fitted data (natural log)."""
        if not self.data or self.target not in self.data:
            raise XentError("this result does not keep its data; residuals are not available")
        inputs = {k: v for k, v in self.data.items() if k != self.target}
        pred = np.asarray(self.predict(**inputs), dtype=float)
        return np.log(self.data[self.target]) - np.log(pred)

    # ------------------------------------------------------------------ serialisation
    def to_dict(
        self, include_bootstrap: bool = False, include_data: bool = False
    ) -> dict[str, Any]:
        """A JSON-ready dict. Bootstrap samples and data are left out unless asked for."""
        out: dict[str, Any] = {
            "model": self.model,
            "params": dict(self.params),
            "stderr": dict(self.stderr),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "level": self.level,
            "derived": dict(self.derived),
            "metrics": dict(self.metrics),
            "n_bootstrap": 0 if self.bootstrap is None else len(self.bootstrap),
            "warnings": list(self.warnings),
        }
        if self.extra:
            out["extra"] = self.extra
        if include_bootstrap and self.bootstrap is not None:
            out["bootstrap"] = {"names": list(self.bootstrap_names), "samples": self.bootstrap}
        if include_data and self.data:
            out["data"] = self.data
        return _jsonable(out)

    def to_json(
        self,
        path: str | Path | None = None,
        *,
        indent: int | None = 2,
        include_bootstrap: bool = False,
        include_data: bool = False,
    ) -> str:
        """Serialise to JSON (and write it to ``path`` when given)."""
        text = json.dumps(
            self.to_dict(include_bootstrap=include_bootstrap, include_data=include_data),
            indent=indent,
            allow_nan=False,
        )
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitResult:
        """Rebuild a result from :meth:`to_dict` output (without its prediction functions)."""
        boot = d.get("bootstrap") or {}
        samples = boot.get("samples")
        return cls(
            model=str(d["model"]),
            params={k: float(v) for k, v in d["params"].items()},
            stderr={k: float(v) for k, v in d.get("stderr", {}).items() if v is not None},
            intervals={k: (float(v[0]), float(v[1])) for k, v in d.get("intervals", {}).items()},
            metrics={k: v for k, v in d.get("metrics", {}).items()},
            derived={k: float(v) for k, v in d.get("derived", {}).items() if v is not None},
            level=float(d.get("level", 0.95)),
            bootstrap=None if samples is None else np.asarray(samples, dtype=float),
            bootstrap_names=tuple(boot.get("names", ())),
            data={k: np.asarray(v, dtype=float) for k, v in d.get("data", {}).items()},
            extra=dict(d.get("extra", {})),
            warnings=[str(w) for w in d.get("warnings", [])],
        )

    # ------------------------------------------------------------------ display
    def table_rows(self) -> list[tuple[str, float, float | None, tuple[float, float] | None]]:
        """``(name, value, stderr, interval)`` for every parameter then every derived quantity."""
        rows = []
        for name, value in [*self.params.items(), *self.derived.items()]:
            rows.append((name, value, self.stderr.get(name), self.intervals.get(name)))
        return rows

    def summary(self) -> str:
        """A plain-text table of parameters, intervals and metrics."""
        pct = f"{100 * self.level:g}%"
        lines = [f"{self.model} fit"]
        for name, value, se, iv in self.table_rows():
            line = f"  {name:>10s} = {value:.6g}"
            if se is not None:
                line += f"  (se {se:.3g})"
            if iv is not None:
                line += f"  {pct} [{iv[0]:.6g}, {iv[1]:.6g}]"
            lines.append(line)
        shown = ("objective", "r2", "mae", "rmse", "n_points", "converged")
        metrics = ", ".join(f"{k}={self.metrics[k]:.6g}" for k in shown if k in self.metrics)
        if metrics:
            lines.append(f"  {metrics}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------ plotting
    def plot(self, path: str | Path | None = None, **kwargs: Any) -> Any:
        """Plot the data and the fit (and residuals); save to ``path`` when given.

        Uses the law's ``plot_fn`` if it has one, else observed vs predicted and residuals.
        Needs matplotlib (``pip install 'xent[plot]'``). Returns the figure.
        """
        plt = require_matplotlib()
        if self.plot_fn is not None:
            fig = self.plot_fn(self, plt=plt, **kwargs)
        else:
            fig = self._default_plot(plt)
        if path is not None:
            fig.savefig(str(path), dpi=kwargs.get("dpi", 120), bbox_inches="tight")
            plt.close(fig)
        return fig

    def _default_plot(self, plt: Any) -> Any:
        if not self.data or self.target not in self.data:
            raise XentError("this result does not keep its data; nothing to plot")
        inputs = {k: v for k, v in self.data.items() if k != self.target}
        observed = self.data[self.target]
        pred = np.asarray(self.predict(**inputs), dtype=float)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.scatter(pred, observed, s=10, alpha=0.7)
        lo, hi = float(min(pred.min(), observed.min())), float(max(pred.max(), observed.max()))
        ax1.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax1.set_xlabel(f"predicted {self.target}")
        ax1.set_ylabel(f"observed {self.target}")
        ax1.set_title(f"{self.model}: R^2 = {self.metrics.get('r2', float('nan')):.4f}")
        ax2.scatter(pred, np.log(observed) - np.log(pred), s=10, alpha=0.7)
        ax2.axhline(0.0, color="k", lw=1)
        ax2.set_xlabel(f"predicted {self.target}")
        ax2.set_ylabel("log residual")
        fig.tight_layout()
        return fig


def _stack(arrays: Any, count: int) -> np.ndarray:
    """Stack ``count`` equally shaped arrays from an iterable into one preallocated array."""
    it = iter(arrays)
    first = np.asarray(next(it), dtype=np.float64)
    out = np.empty((count, *first.shape))
    out[0] = first
    for i, a in enumerate(it, start=1):
        out[i] = a
    return out


def summarise_samples(
    names: Sequence[str], samples: np.ndarray, level: float = 0.95
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Standard errors and percentile intervals of each column of ``samples`` (B, k)."""
    samples = np.asarray(samples, dtype=float)
    tail = 100.0 * (1.0 - level) / 2.0
    stderr: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for j, name in enumerate(names):
        col = samples[:, j]
        col = col[np.isfinite(col)]
        if len(col) < 2:
            continue
        stderr[name] = float(np.std(col, ddof=1))
        intervals[name] = (float(np.percentile(col, tail)), float(np.percentile(col, 100 - tail)))
    return stderr, intervals
