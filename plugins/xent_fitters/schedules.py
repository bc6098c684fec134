"""Learning-rate schedules: the per-step rates of the schedules of the Multi-Power Law runs.

A *curve* is a dict ``{"lr": per-step learning rates, "step": sampled steps, "loss": losses}``
(see :mod:`xent_fitters.curves`). The Multi-Power Law loss curves (Luo et al.,
arXiv:2503.12811) store the loss only every 128 steps; this module regenerates their per-step
schedules from the file names and loads them (:func:`load_mpl_curves`).

Schedules (all with a linear warmup ``0 -> peak`` over ``warmup`` steps, ``numpy.linspace``):

- ``cosine``: ``final + (peak - final) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2``;
- ``constant``: ``peak``;
- ``two_stage`` (``wsdcon_X``): ``peak`` up to ``switch``, then ``low``;
- ``wsd``: ``peak`` up to ``decay_start``, then a geometric (``shape="exp"``) or linear
  (``shape="linear"``) interpolation from ``peak`` to ``final`` at ``total``.

The curve checks, scores, plots, result class and robust fit that used to live here are in
:mod:`~xent_fitters.curves`, :mod:`~xent_fitters.curve_metrics`, :mod:`~xent_fitters.curve_plots`,
:mod:`~xent_fitters.curve_result` and :mod:`~xent_fitters.robust_fit`; they are re-exported below
so ``from xent_fitters.schedules import ...`` keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xent_core import BadInputError

from .curve_metrics import curve_metrics, mean_metrics
from .curve_plots import plot_curve_result, plot_curves
from .curve_result import CurveFitResult, CurvePredict
from .curves import check_curve, check_curves, check_given_params
from .robust_fit import LogPredJac, LsqFit, huber_least_squares

__all__ = [
    "MPL_FINAL_LR",
    "MPL_PEAK_LR",
    "MPL_TEST",
    "MPL_TRAIN",
    "MPL_WARMUP",
    "CurveFitResult",
    "CurvePredict",
    "LogPredJac",
    "LsqFit",
    "check_curve",
    "check_curves",
    "check_given_params",
    "constant_schedule",
    "cosine_schedule",
    "curve_metrics",
    "huber_least_squares",
    "load_mpl_curves",
    "mean_metrics",
    "mpl_schedule",
    "plot_curve_result",
    "plot_curves",
    "two_stage_schedule",
    "warmup_lr",
    "wsd_schedule",
]

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
