"""Loss curves as the curve laws take them: ``{"lr", "step", "loss"}`` dicts, checked.

``lr[i]`` is the learning rate used at step ``i`` (``lr[0]`` is the first step, so a linear
warmup from 0 may start with ``lr[0] == 0``) and ``loss[j]`` is the loss recorded at step
``step[j]``, after the updates of steps ``0 .. step[j]``. An optional ``"name"`` labels the curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError


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
