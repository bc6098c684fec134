"""Temperature scaling: fit a post-hoc calibrator on held-out logits (scalar, vector or matrix).

``fit_temperature`` returns a :class:`Calibration` (the calibrator plus NLL, ECE and Brier before
and after, and a reliability diagram); the registered estimator ``temperature-scaling`` wraps it.

Scalar scaling minimises ``NLL(z / T)`` over ``u = log T`` with bounded Brent (deterministic).
``NLL(beta z)`` is convex in ``beta = 1/T = e^{-u}``, so the objective is unimodal in ``u`` and
the 1-D search finds its minimum; an optimum on a bound (separable data: T -> 0; uninformative
logits: T -> inf) is reported in ``at_bound``. Vector (``z * w + b``) and matrix (``z W^T + b``)
scaling are convex in their parameters and fitted with L-BFGS from the scalar solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, BadParameterError, FitError, validate

from ._calibration import (
    Predictions,
    ReliabilityTable,
    calibration_error,
    predictions,
    reliability_table,
)
from ._common import finish

METHODS = ("scalar", "vector", "matrix")
MAX_ITER = 200  # L-BFGS iterations of the vector and matrix fits (the estimator uses the default)


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, targets)


def _metrics(logits: torch.Tensor, targets: torch.Tensor, n_bins: int) -> dict[str, Any]:
    """NLL, top-label ECE, multiclass Brier and the reliability table of float64 logits."""
    p = torch.softmax(logits, dim=1)
    conf, pred = p.max(dim=1)
    correct = (pred == targets).to(torch.float64)
    onehot = torch.nn.functional.one_hot(targets, p.shape[1]).to(p.dtype)
    table = reliability_table(conf.cpu().numpy(), correct.cpu().numpy(), n_bins)
    return {
        "nll": float(_nll(logits, targets)),
        "ece": calibration_error(table, "l1", "count"),
        "brier": float(((p - onehot) ** 2).sum(dim=1).mean()),
        "accuracy": float(correct.mean()),
        "table": table,
    }


@dataclass
class Calibration:
    """A fitted calibrator and how much it helped, on the data it was fitted on."""

    method: str
    temperature: float
    """The scalar fit's T (vector/matrix fits start from it)."""
    weight: torch.Tensor | None
    """(C,) per-class scale (vector) or (C, C) matrix (matrix); None for scalar."""
    bias: torch.Tensor | None
    before: dict[str, Any]
    after: dict[str, Any]
    at_bound: bool = False
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def calibrate(self, logits: Any) -> torch.Tensor:
        """Calibrated logits of shape (..., C) in float64 (softmax them for probabilities)."""
        z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits)
        if not z.is_floating_point() or z.dim() < 1:
            raise BadInputError("calibrate needs floating logits of shape (..., C)")
        z = z.detach().to(torch.float64)
        if self.method == "scalar":
            return z / self.temperature
        assert self.weight is not None and self.bias is not None
        c = self.bias.numel()
        if z.shape[-1] != c:
            raise BadInputError(f"this calibrator was fitted on {c} classes, got {z.shape[-1]}")
        w, b = self.weight.to(z.device), self.bias.to(z.device)
        return (z * w if self.method == "vector" else z @ w.T) + b

    def probs(self, logits: Any) -> torch.Tensor:
        """Calibrated probabilities ``softmax(calibrate(logits))``."""
        return torch.softmax(self.calibrate(logits), dim=-1)

    def summary(self) -> str:
        """A few lines: the calibrator and the metrics before and after."""
        head = f"temperature scaling ({self.method}), n = {self.n}: T = {self.temperature:.6g}"
        if self.at_bound:
            head += " (at a bound of the search: the data may be separable or uninformative)"
        rows = [head, f"{'':8}{'before':>12}{'after':>12}"]
        for key in ("nll", "ece", "brier"):
            rows.append(f"{key:8}{self.before[key]:>12.6g}{self.after[key]:>12.6g}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (the tables as lists)."""

        def plain(m: dict[str, Any]) -> dict[str, Any]:
            t: ReliabilityTable = m["table"]
            out = {k: v for k, v in m.items() if k != "table"}
            out["table"] = {k: np.asarray(v).tolist() for k, v in t.as_dict().items()}
            return out

        return {
            "method": self.method,
            "temperature": self.temperature,
            "weight": None if self.weight is None else self.weight.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
            "at_bound": self.at_bound,
            "n": self.n,
            "before": plain(self.before),
            "after": plain(self.after),
        }

    def plot(self, path: str | Path | None = None, **kwargs: Any) -> Any:
        """Reliability diagrams before and after; saved to ``path`` when given. Returns the figure.

        Same plotting path as the scaling-law fits (matplotlib, Agg backend; ``pip install
        'xent[plot]'``).
        """
        from xent_fitters.result import require_matplotlib  # the fitters' plotting entry point

        plt = require_matplotlib()
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
        for ax, (label, m) in zip(axes, (("before", self.before), ("after", self.after))):
            t: ReliabilityTable = m["table"]
            mids = 0.5 * (t.edges[:-1] + t.edges[1:])
            width = np.diff(t.edges)
            full = t.counts > 0
            ax.bar(mids[full], t.accuracy[full], width=width[full], edgecolor="k", alpha=0.7,
                   label="accuracy")  # fmt: skip
            ax.bar(mids[full], (t.confidence - t.accuracy)[full], bottom=t.accuracy[full],
                   width=width[full], color="tab:red", alpha=0.3, label="gap")  # fmt: skip
            ax.plot([0, 1], [0, 1], "k--", lw=1)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("confidence")
            ax.set_title(f"{label}: ECE {m['ece']:.4f}, NLL {m['nll']:.4f}")
        axes[0].set_ylabel("accuracy")
        axes[0].legend(loc="upper left")
        fig.suptitle(f"temperature scaling ({self.method}), T = {self.temperature:.4g}")
        fig.tight_layout()
        if path is not None:
            fig.savefig(str(path), dpi=kwargs.get("dpi", 120), bbox_inches="tight")
            plt.close(fig)
        return fig


def _fit_scalar(z: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float]) -> float:
    from scipy.optimize import minimize_scalar

    def objective(u: float) -> float:
        return float(_nll(z * math.exp(-u), y))

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    if not np.isfinite(res.fun):
        raise FitError("temperature scaling: the NLL is not finite along the search")
    return _polish(z, y, float(math.exp(res.x)), (lo, hi))


def _polish(
    z: torch.Tensor, y: torch.Tensor, temperature: float, log_bounds: tuple[float, float]
) -> float:
    """Newton steps on beta = 1/T from Brent's answer.

    Brent only sees NLL values, which are flat to round-off within ~1e-8 of the minimum; the
    derivative ``mean(E_p[z] - z_y)`` and curvature ``mean(Var_p[z])`` in beta pin the root to
    machine precision. Skipped when the optimum is on a bound.
    """
    beta = 1.0 / temperature
    zy = z.gather(1, y[:, None]).squeeze(1)
    for _ in range(4):
        p = torch.softmax(z * beta, dim=1)
        mean = (p * z).sum(dim=1)
        grad = float((mean - zy).mean())
        curv = float(((p * z * z).sum(dim=1) - mean * mean).mean())
        if not curv > 0:
            break
        step = grad / curv
        candidate = beta - step
        if candidate <= 0 or not log_bounds[0] < -math.log(candidate) < log_bounds[1]:
            break
        beta = candidate
        if abs(step) <= 1e-15 * beta:
            break
    return 1.0 / beta


def _fit_affine(
    z: torch.Tensor, y: torch.Tensor, method: str, temperature: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    c = z.shape[1]
    if method == "vector":
        w = torch.full((c,), 1.0 / temperature, dtype=torch.float64)
    else:
        w = torch.eye(c, dtype=torch.float64) / temperature
    w.requires_grad_(True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        out = z * w if method == "vector" else z @ w.T
        loss = _nll(out + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def fit_temperature(
    logits: Any,
    targets: Any,
    *,
    method: str = "scalar",
    bounds: tuple[float, float] = (0.05, 20.0),
    n_bins: int = 15,
    ignore_index: int | None = -100,
    max_iter: int = MAX_ITER,
) -> Calibration:
    """Fit temperature (or vector/matrix) scaling on held-out ``logits`` (N, C) and ``targets``.

    Args:
        logits: (..., C) held-out logits (not the training data).
        targets: (...) integer class ids.
        method: ``scalar`` (z / T), ``vector`` (z * w + b) or ``matrix`` (z W^T + b).
        bounds: search interval of T for the scalar fit.
        n_bins: uniform bins of the ECE and the reliability tables.
        ignore_index: targets equal to it are dropped (None: keep every row).
        max_iter: L-BFGS iterations of the vector and matrix fits.
    """
    method = validate.choice("method", method, METHODS)
    n_bins = validate.integer("n_bins", n_bins, low=1)
    max_iter = validate.integer("max_iter", max_iter, low=1)
    lo, hi = _check_bounds(bounds)
    z, y = _inputs(logits, targets, ignore_index)
    before = _metrics(z, y, n_bins)
    temperature, weight, bias, calibrated = _fit(z, y, method, (lo, hi), max_iter)
    at_bound = math.isclose(temperature, lo, rel_tol=1e-6) or math.isclose(
        temperature, hi, rel_tol=1e-6
    )
    after = _metrics(calibrated, y, n_bins)
    return Calibration(method, temperature, weight, bias, before, after, at_bound, len(y))


def _inputs(logits: Any, targets: Any, ignore_index: int | None) -> tuple[torch.Tensor, ...]:
    """Checked (N, C) float64 logits and (N,) targets on the CPU."""
    pred: Predictions = predictions(
        logits, targets, from_logits=True, ignore_index=ignore_index, who="temperature-scaling"
    )
    if pred.binary:
        raise BadInputError(
            "temperature-scaling needs (N, C) logits with C >= 2; for one logit per row pass "
            "the two-class logits [0, s]"
        )
    return pred.x.to("cpu", torch.float64), pred.targets.to("cpu")


def _fit(
    z: torch.Tensor, y: torch.Tensor, method: str, bounds: tuple[float, float], max_iter: int
) -> tuple[float, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """(temperature, weight, bias, calibrated logits) of one fit."""
    temperature = _fit_scalar(z, y, bounds)
    if method == "scalar":
        return temperature, None, None, z / temperature
    weight, bias = _fit_affine(z, y, method, temperature, max_iter)
    return temperature, weight, bias, (z * weight if method == "vector" else z @ weight.T) + bias


def _check_bounds(bounds: Any) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise BadParameterError(
            f"bounds must be a pair (low, high) of temperatures, got {bounds!r}"
        )
    lo = validate.positive("bounds[0]", bounds[0])
    hi = validate.positive("bounds[1]", bounds[1])
    if not lo < hi:
        raise BadParameterError(f"bounds must satisfy low < high, got {bounds!r}")
    return lo, hi


class TemperatureScaling:
    """Temperature scaling: fit T minimising the NLL of softmax(z / T) on held-out logits.

        T* = argmin_{T > 0} -(1/N) sum_i log softmax(z_i / T)_{y_i}

    searched over log T in ``bounds`` with bounded Brent (deterministic; NLL(z/T) is convex in
    1/T, hence unimodal in log T). T > 1 softens an over-confident model, T < 1 sharpens an
    under-confident one; the argmax (accuracy) never changes. ``method='vector'`` fits
    ``z * w + b`` and ``'matrix'`` fits ``z W^T + b`` (L-BFGS from the scalar solution; these can
    change the argmax and over-fit small held-out sets).

    Call ``est(logits, targets)``: ``logits`` (..., C), ``targets`` integer class ids. Returns
    the NLL after calibration (nats); ``details`` holds ``temperature``, ``calibrator`` (a
    :class:`Calibration`: ``calibrate(logits)``, ``probs``, ``plot(path)``, ``summary()``),
    ``nll_before``/``nll_after``, ``ece_before``/``ece_after``, ``brier_before``/``brier_after``,
    ``at_bound`` and ``n``. Fit it on held-out data, never on the training set.

    Args:
        method: ``scalar`` (one T), ``vector`` (per-class scale and bias) or ``matrix``.
        bounds: search interval (low, high) of T.
        n_bins: uniform bins of the ECE and the reliability tables.
        ignore_index: targets equal to it are dropped (None: keep every row).

    Citation: Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks",
    arXiv:1706.04599.
    """

    citation = ("On Calibration of Modern Neural Networks", "arXiv:1706.04599")
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        method: str = "scalar",
        bounds: tuple[float, float] = (0.05, 20.0),
        n_bins: int = 15,
        ignore_index: int | None = -100,
    ) -> None:
        self.method = validate.choice("method", method, METHODS)
        self.bounds = _check_bounds(bounds)
        self.n_bins = validate.integer("n_bins", n_bins, low=1)
        self.ignore_index = validate.optional(validate.integer, "ignore_index", ignore_index)
        self.units = "nats"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if not details:  # the value alone: no metrics or reliability tables before and after
            z, t = _inputs(x, y, self.ignore_index)
            calibrated = _fit(z, t, self.method, self.bounds, MAX_ITER)[3]
            return finish(float(_nll(calibrated, t)), None, False)
        cal = fit_temperature(
            x,
            y,
            method=self.method,
            bounds=self.bounds,
            n_bins=self.n_bins,
            ignore_index=self.ignore_index,
        )
        info = {"temperature": cal.temperature, "calibrator": cal, "at_bound": cal.at_bound}
        info["n"] = cal.n
        for key in ("nll", "ece", "brier"):
            info[f"{key}_before"] = cal.before[key]
            info[f"{key}_after"] = cal.after[key]
        return finish(cal.after["nll"], info, details)
