"""Learning-rate schedules and loss curves for the curve laws (``lr-annealing``, ``multi-power``).

A *curve* is a dict ``{"lr": per-step learning rates, "step": sampled steps, "loss": losses}``:
``lr[i]`` is the learning rate used at step ``i`` (``lr[0]`` is the first step, so a linear warmup
from 0 may start with ``lr[0] == 0``) and ``loss[j]`` is the loss recorded at step ``step[j]``,
after the updates of steps ``0 .. step[j]``. An optional ``"name"`` labels the curve in plots.

This module holds what the curve laws share: it regenerates the per-step schedules of the
Multi-Power Law loss curves (Luo et al., arXiv:2503.12811), whose CSV files store the loss only
every 128 steps; checks curves (:func:`check_curves`); scores predictions (:func:`curve_metrics`);
plots them (:func:`plot_curves`); fits them (:func:`huber_least_squares`); and defines
:class:`CurveFitResult`, the result of a curve fit.

Schedules (all with a linear warmup ``0 -> peak`` over ``warmup`` steps, ``numpy.linspace``):

- ``cosine``: ``final + (peak - final) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2``;
- ``constant``: ``peak``;
- ``two_stage`` (``wsdcon_X``): ``peak`` up to ``switch``, then ``low``;
- ``wsd``: ``peak`` up to ``decay_start``, then a geometric (``shape="exp"``) or linear
  (``shape="linear"``) interpolation from ``peak`` to ``final`` at ``total``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError

from .result import FitResult

MPL_WARMUP = 2160
MPL_PEAK_LR = 3e-4
MPL_FINAL_LR = 3e-5
MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MPL_TEST = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)


# ---------------------------------------------------------------------------- schedules
def _check_lengths(total: int, warmup: int, *marks: int) -> None:
    if warmup < 0 or total <= warmup:
        raise BadInputError(
            f"schedule needs 0 <= warmup < total, got warmup={warmup}, total={total}"
        )
    for m in marks:
        if not warmup <= m <= total:
            raise BadInputError(f"schedule step {m} must lie in [warmup={warmup}, total={total}]")


def warmup_lr(warmup: int, peak: float) -> np.ndarray:
    """Linear warmup ``0 -> peak`` over ``warmup`` steps (both ends included)."""
    return np.linspace(0.0, peak, warmup)


def constant_schedule(
    total: int, peak: float = MPL_PEAK_LR, warmup: int = MPL_WARMUP
) -> np.ndarray:
    """Warmup, then ``peak`` up to step ``total`` (exclusive)."""
    _check_lengths(total, warmup)
    return np.concatenate([warmup_lr(warmup, peak), np.full(total - warmup, peak)])


def cosine_schedule(
    total: int, peak: float = MPL_PEAK_LR, final: float = MPL_FINAL_LR, warmup: int = MPL_WARMUP
) -> np.ndarray:
    """Warmup, then a half cosine from ``peak`` to ``final`` over steps ``warmup .. total``."""
    _check_lengths(total, warmup)
    s = np.arange(warmup, total, dtype=np.float64)
    cos = final + 0.5 * (peak - final) * (1.0 + np.cos(np.pi * (s - warmup) / (total - warmup)))
    return np.concatenate([warmup_lr(warmup, peak), cos])


def two_stage_schedule(
    total: int, low: float, switch: int, peak: float = MPL_PEAK_LR, warmup: int = MPL_WARMUP
) -> np.ndarray:
    """Warmup, ``peak`` up to step ``switch`` (exclusive), then ``low`` up to ``total``."""
    _check_lengths(total, warmup, switch)
    return np.concatenate(
        [warmup_lr(warmup, peak), np.full(switch - warmup, peak), np.full(total - switch, low)]
    )


def wsd_schedule(
    total: int,
    decay_start: int,
    peak: float = MPL_PEAK_LR,
    final: float = MPL_FINAL_LR,
    warmup: int = MPL_WARMUP,
    shape: str = "exp",
) -> np.ndarray:
    """Warmup-stable-decay: ``peak`` until ``decay_start``, then decay towards ``final``.

    ``shape="exp"``: ``peak**(1 - f) * final**f``; ``shape="linear"``: ``(1 - f) * peak + f *
    final``, with ``f = (s - decay_start) / (total - decay_start)``.
    """
    _check_lengths(total, warmup, decay_start)
    f = (np.arange(decay_start, total, dtype=np.float64) - decay_start) / (total - decay_start)
    if shape == "exp":
        decay = peak ** (1.0 - f) * final**f
    elif shape == "linear":
        decay = (1.0 - f) * peak + f * final
    else:
        raise BadInputError(f"wsd shape must be 'exp' or 'linear', got {shape!r}")
    return np.concatenate([warmup_lr(warmup, peak), np.full(decay_start - warmup, peak), decay])


def mpl_schedule(name: str) -> np.ndarray:
    """The per-step schedule of one Multi-Power Law curve, from its file name.

    ``cosine_T`` and ``constant_T`` (T total steps), ``wsdcon_X`` (16000 steps, ``3e-4`` until
    step 8000 then ``X * 1e-5``), ``wsd_S_T`` (geometric decay ``3e-4 -> 3e-5`` over steps
    ``S .. T``) and ``wsdld_S_T`` (the same with a linear decay); warmup ``0 -> 3e-4`` over 2160
    steps.
    """
    stem = Path(name).stem
    m = re.fullmatch(r"(cosine|constant|wsdcon|wsd|wsdld)_(\d+)(?:_(\d+))?", stem)
    if m is None:
        raise BadInputError(
            f"unknown Multi-Power Law schedule {name!r}; expected cosine_T, constant_T, "
            "wsdcon_X, wsd_S_T or wsdld_S_T"
        )
    kind, a, b = m.group(1), int(m.group(2)), m.group(3)
    if kind in ("cosine", "constant", "wsdcon") and b is not None:
        raise BadInputError(f"schedule {name!r}: {kind} takes one number")
    if kind == "cosine":
        return cosine_schedule(a)
    if kind == "constant":
        return constant_schedule(a)
    if kind == "wsdcon":
        return two_stage_schedule(16000, low=a * 1e-5, switch=8000)
    if b is None:
        raise BadInputError(f"schedule {name!r}: {kind} needs a decay start and a total")
    return wsd_schedule(int(b), a, shape="exp" if kind == "wsd" else "linear")


def load_mpl_curves(folder: str | Path, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Read Multi-Power Law curve CSVs (``step,lr,loss``) and attach their regenerated schedules.

    ``folder`` holds ``<schedule>.csv`` files (e.g. ``mpl_loss_curves/25M``); ``names`` picks
    some (default: every CSV in the folder, sorted). Rows at or beyond the schedule's last step
    are dropped (the 24000-step curves keep steps < 24000).
    """
    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"loss-curve folder {str(root)!r} does not exist")
    stems = list(names) if names is not None else sorted(p.stem for p in root.glob("*.csv"))
    curves = []
    for stem in stems:
        path = root / f"{Path(stem).stem}.csv"
        if not path.is_file():
            raise BadInputError(f"no loss-curve file {path.name!r} in {str(root)!r}")
        table = np.genfromtxt(path, delimiter=",", names=True)
        lr = mpl_schedule(path.stem)
        step = np.asarray(table["step"], dtype=np.int64)
        keep = step < len(lr)
        curves.append(
            {
                "name": path.stem,
                "lr": lr,
                "step": step[keep],
                "loss": np.asarray(table["loss"], dtype=np.float64)[keep],
                "logged_lr": np.asarray(table["lr"], dtype=np.float64)[keep],
            }
        )
    return curves


# ---------------------------------------------------------------------------- curve checks
def check_curve(
    curve: Mapping[str, Any], index: int = 0, *, need_loss: bool = True
) -> dict[str, Any]:
    """One curve as float64 ``lr``/``loss`` and int64 ``step`` arrays, or a clear BadInputError.

    ``lr`` must be finite, ``lr[0] >= 0`` and ``lr[i] > 0`` for ``i >= 1``; ``step`` integer
    steps ``0 <= step < len(lr)`` (``>= 1`` when ``lr[0] == 0``); ``loss`` finite, positive and as long as ``step``.
    """
    if not isinstance(curve, Mapping):
        raise BadInputError(
            f"curve {index}: expected a dict with keys 'lr', 'step' and 'loss', "
            f"got {type(curve).__name__}"
        )
    where = f"curve {index}" + (f" ({curve['name']!r})" if "name" in curve else "")
    keys = ("lr", "step", "loss") if need_loss else ("lr", "step")
    missing = [k for k in keys if k not in curve]
    if missing:
        raise BadInputError(f"{where}: missing key(s) {missing}; keys found: {sorted(curve)}")
    lr = _vector(where, "lr", curve["lr"])
    if len(lr) < 2:
        raise BadInputError(f"{where}: 'lr' needs the learning rate of every step, got {len(lr)}")
    if lr[0] < 0 or (lr[1:] <= 0).any():
        bad = int(np.flatnonzero(np.r_[lr[0] < 0, lr[1:] <= 0])[0])
        raise BadInputError(
            f"{where}: learning rates must be > 0 (lr[0] may be 0); lr[{bad}] = {lr[bad]:g}"
        )
    step_f = _vector(where, "step", curve["step"])
    step = np.rint(step_f).astype(np.int64)
    if not np.array_equal(step, step_f):
        raise BadInputError(f"{where}: 'step' must hold integer step numbers")
    if len(step) == 0:
        raise BadInputError(f"{where}: no sampled steps")
    first = 0 if lr[0] > 0 else 1  # the loss at step s follows the updates of steps 0..s
    if step.min() < first or step.max() >= len(lr):
        raise BadInputError(
            f"{where}: steps must lie in [{first}, {len(lr) - 1}] (the schedule has {len(lr)} "
            f"steps); got steps {step.min()} .. {step.max()}: 'lr' must cover every sampled step"
        )
    out: dict[str, Any] = {"lr": lr, "step": step}
    if "name" in curve:
        out["name"] = str(curve["name"])
    if need_loss:
        loss = _vector(where, "loss", curve["loss"])
        if len(loss) != len(step):
            raise BadInputError(
                f"{where}: 'loss' has {len(loss)} values but 'step' has {len(step)}; "
                "give one loss per sampled step"
            )
        if (loss <= 0).any():
            raise BadInputError(f"{where}: losses must be > 0")
        out["loss"] = loss
    return out


def check_given_params(
    params: Mapping[str, Any], names: Sequence[str], law: str
) -> dict[str, float]:
    """Given parameter values as floats: exactly ``names``, each a finite number."""
    if set(params) != set(names):
        missing = [n for n in names if n not in params]
        unknown = [n for n in params if n not in names]
        raise BadParameterError(
            f"{law} parameters are {list(names)}; missing {missing}, unknown {unknown}"
        )
    out = {}
    for n in names:
        try:
            v = float(params[n])
        except (TypeError, ValueError):
            raise BadParameterError(f"{law} parameter {n!r} must be a number") from None
        if not np.isfinite(v):
            raise BadParameterError(f"{law} parameter {n!r} must be finite, got {v}")
        out[n] = v
    return out


def _vector(where: str, key: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{where}: {key!r} is not numeric: {exc}") from None
    if arr.ndim != 1:
        raise BadInputError(f"{where}: {key!r} must be 1-D, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise BadInputError(
            f"{where}: {key!r} has {int(bad.sum())} NaN/inf value(s) "
            f"(first at index {int(np.flatnonzero(bad)[0])})"
        )
    return arr


def check_curves(curves: Any, *, need_loss: bool = True) -> list[dict[str, Any]]:
    """A list of checked curves (a single dict is accepted as one curve)."""
    if isinstance(curves, Mapping):
        curves = [curves]
    if not isinstance(curves, Sequence) or isinstance(curves, (str, bytes)):
        raise BadInputError(
            "curves must be a list of dicts {'lr': ..., 'step': ..., 'loss': ...}, "
            f"got {type(curves).__name__}"
        )
    if len(curves) == 0:
        raise BadInputError("no curves given")
    return [check_curve(c, i, need_loss=need_loss) for i, c in enumerate(curves)]


# ---------------------------------------------------------------------------- scoring, plots
def curve_metrics(loss: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2, MAE, RMSE, PredE (mean relative error) and WorstE (max relative error) of one curve."""
    loss = np.asarray(loss, dtype=np.float64)
    err = np.asarray(pred, dtype=np.float64) - loss
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))
    return {
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "prede": float(np.mean(np.abs(err) / loss)),
        "worste": float(np.max(np.abs(err) / loss)),
    }


def mean_metrics(per_curve: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over curves (the convention of the Multi-Power Law paper)."""
    keys = per_curve[0].keys()
    return {k: float(np.mean([m[k] for m in per_curve])) for k in keys}


def plot_curves(
    curves: Sequence[Mapping[str, Any]],
    preds: Sequence[np.ndarray],
    *,
    plt: Any,
    title: str = "",
    held_out: int = 0,
) -> Any:
    """Loss vs step (points) and prediction (lines) for each curve, with the LR schedule below.

    The last ``held_out`` curves are drawn dashed (predicted, not fitted).
    """
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_fit = len(curves) - held_out
    for i, (c, p) in enumerate(zip(curves, preds)):
        col = colors[i % len(colors)]
        label = c.get("name", f"curve {i}") + (" (held out)" if i >= n_fit else "")
        ax.plot(c["step"], c["loss"], ".", ms=2, color=col, alpha=0.5)
        ax.plot(c["step"], p, "--" if i >= n_fit else "-", lw=1.2, color=col, label=label)
        ax_lr.plot(np.arange(len(c["lr"])), c["lr"], lw=1, color=col)
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- results
CurvePredict = Callable[..., np.ndarray]  # curve_predict(params, lr=, step=) -> losses


@dataclass
class CurveFitResult(FitResult):
    """A fitted loss-curve law: ``predict(lr=, step=)``, ``evaluate(curves)``, ``plot(path)``.

    ``curves`` are the (checked) curves it was fitted on, kept for plots and residuals; they are
    not serialised by ``to_json``. ``metrics`` hold the objective and the mean over the fitted
    curves of R^2, MAE, RMSE, PredE and WorstE.
    """

    curves: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def predict(self, lr: Any = None, step: Any = None, **inputs: Any) -> np.ndarray:  # type: ignore[override]
        """Predicted losses at ``step`` (sampled steps) for the per-step schedule ``lr``."""
        if inputs or lr is None or step is None:
            extra = f"; unexpected {sorted(inputs)}" if inputs else ""
            raise BadInputError(f"predict takes lr= (per-step schedule) and step={extra}")
        return super().predict(lr=lr, step=step)

    def evaluate(self, curves: Any) -> dict[str, Any]:
        """Score the law on ``curves``: mean metrics (``r2``, ``mae``, ``rmse``, ``prede``,
        ``worste``) and the per-curve ones under ``"per_curve"``."""
        checked = check_curves(curves)
        per = []
        for i, c in enumerate(checked):
            m = curve_metrics(c["loss"], self.predict(lr=c["lr"], step=c["step"]))
            per.append({"name": c.get("name", f"curve {i}"), **m})
        out: dict[str, Any] = mean_metrics(
            [{k: v for k, v in m.items() if k != "name"} for m in per]
        )
        out["per_curve"] = per
        return out

    def residuals(self) -> np.ndarray:
        """``log(observed) - log(predicted)`` over the fitted curves, concatenated."""
        if not self.curves:
            return super().residuals()
        return np.concatenate(
            [
                np.log(c["loss"]) - np.log(self.predict(lr=c["lr"], step=c["step"]))
                for c in self.curves
            ]
        )


def plot_curve_result(
    result: FitResult, *, plt: Any, curves: Any = None, title: str | None = None, **_: Any
) -> Any:
    """``plot_fn`` of curve results: fitted curves solid, extra ``curves`` dashed (held out)."""
    fitted = list(getattr(result, "curves", []) or [])
    extra = check_curves(curves) if curves is not None else []
    shown = fitted + extra
    if not shown:
        raise BadInputError("nothing to plot: the result keeps no curves; pass curves=[...]")
    preds = [np.asarray(result.predict(lr=c["lr"], step=c["step"])) for c in shown]
    return plot_curves(
        shown, preds, plt=plt, title=result.model if title is None else title, held_out=len(extra)
    )


# ---------------------------------------------------------------------------- robust fit
LogPredJac = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class LsqFit:
    """The end point of :func:`huber_least_squares`."""

    theta: np.ndarray
    objective: float
    converged: bool
    message: str
    n_evals: int


def _huber_rho(delta: float, weights: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """``rho(z = r^2)`` for least_squares such that ``0.5 * sum(rho) = sum w * huber_delta(r)``."""
    d2 = delta * delta

    def rho(z: np.ndarray) -> np.ndarray:
        out = np.empty((3, z.size))
        inside = z <= d2
        sz = np.sqrt(np.where(inside, 1.0, z))
        out[0] = np.where(inside, z, 2.0 * delta * sz - d2)
        out[1] = np.where(inside, 1.0, delta / sz)
        out[2] = np.where(inside, 0.0, -0.5 * delta / (sz * sz * sz))
        if weights is not None:
            out *= weights
        return out

    return rho


def huber_least_squares(
    log_pred_jac: LogPredJac,
    log_y: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    delta: float,
    *,
    weights: np.ndarray | None = None,
    max_evals: int = 400,
    tol: float = 1e-8,
) -> LsqFit:
    """Minimise ``sum_i w_i huber_delta(log_pred_i(theta) - log_y_i)`` within bounds.

    The objective of the fitting engine, solved with the bounded trust-region Gauss-Newton method
    of ``scipy.optimize.least_squares`` (``trf``, robust loss), which uses the full Jacobian
    ``log_pred_jac(theta) -> (log_pred (n,), d log_pred / d theta (n, k))`` and so needs far
    fewer evaluations than a gradient-only method on the long valleys of the curve laws.
    ``tol`` is its ``ftol``/``xtol``/``gtol``: 1e-8 stops once the objective stalls at about
    1e-8 relative (the parameters still drift along flat valleys beyond that, to no effect).
    """
    from scipy.optimize import least_squares

    from .engine import huber

    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    span = upper - lower
    x0 = np.clip(np.asarray(theta0, dtype=np.float64), lower + 1e-9 * span, upper - 1e-9 * span)
    memo: dict[str, Any] = {}

    def evaluate(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = th.tobytes()
        if memo.get("key") != key:
            lp, jac = log_pred_jac(th)
            memo.update(key=key, r=lp - log_y, jac=jac)
            memo["n"] = memo.get("n", 0) + 1
        return memo["r"], memo["jac"]

    def fun(th: np.ndarray) -> np.ndarray:
        r = evaluate(th)[0]
        return np.where(np.isfinite(r), r, np.inf) if not np.isfinite(r).all() else r

    def jac(th: np.ndarray) -> np.ndarray:
        return evaluate(th)[1]

    r0 = fun(x0)
    if not np.isfinite(r0).all():
        return LsqFit(x0, float("inf"), False, "the prediction is not positive at the start", 1)
    res = least_squares(
        fun,
        x0,
        jac=jac,
        bounds=(lower, upper),
        method="trf",
        loss=_huber_rho(delta, weights),
        f_scale=1.0,
        x_scale="jac",
        max_nfev=max_evals,
        ftol=tol,
        xtol=tol,
        gtol=tol,
    )
    r = fun(res.x)
    h = huber(r, delta)
    objective = float(np.sum(h if weights is None else weights * h))
    return LsqFit(np.asarray(res.x), objective, res.status > 0, str(res.message), memo.get("n", 0))
