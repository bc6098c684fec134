"""Can the data determine the law? Refusals before a fit and warnings after it.

Before a fit, :func:`check_design` refuses data that cannot identify the parameters: fewer
distinct design points than parameters plus one, an input or the target that never varies.
After it, :func:`check_finite` refuses non-finite derived and compute-optimal values, and
:func:`bound_warnings` names the parameters that ended on the box of the search (a bound is
where the optimiser was stopped, not where the data put the parameter) and what would identify
them. Laws call these so every fit keeps the same promise: a ``FitError`` or an honest result.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import FitError


class BoundWarning(UserWarning):
    """A fitted parameter ended on the bound of its search box."""


def _constant(x: np.ndarray) -> bool:
    x = np.asarray(x, dtype=np.float64)
    return bool(x.size == 0 or np.all(x == x.flat[0]))


def check_design(
    law: str,
    inputs: Mapping[str, np.ndarray],
    target: np.ndarray,
    n_params: int,
    *,
    must_vary: Sequence[str] | None = None,
    target_name: str = "loss",
) -> None:
    """Raise ``FitError`` when the rows cannot determine ``n_params`` parameters.

    Args:
        law: the law's name, for the message.
        inputs: the input columns (equal lengths).
        target: the target column.
        n_params: the number of free parameters.
        must_vary: the inputs that must take at least two values (default: all of them).
        target_name: the target's name, for the message.
    """
    if _constant(target):
        value = float(np.asarray(target).flat[0]) if np.size(target) else float("nan")
        raise FitError(
            f"{law}: the {target_name} is constant ({value:g} in every row), so no parameter "
            "that shapes the curve can be determined; fit data whose target varies"
        )
    for name in inputs if must_vary is None else must_vary:
        col = inputs[name]
        if _constant(col):
            raise FitError(
                f"{law}: input {name!r} is constant ({float(col.flat[0]):g} in every row), so "
                f"the law's dependence on {name} cannot be determined; add runs at other "
                f"values of {name}"
            )
    design = np.column_stack([np.asarray(v, dtype=np.float64) for v in inputs.values()])
    distinct = len(np.unique(design, axis=0))
    if distinct <= n_params:
        names = ", ".join(inputs)
        raise FitError(
            f"{law}: only {distinct} distinct ({names}) design point(s) for {n_params} free "
            f"parameters (repeated rows add no information); at least {n_params + 1} distinct "
            "points are needed"
        )


def check_finite(law: str, what: str, values: Mapping[str, Any]) -> None:
    """Raise ``FitError`` when any value of ``values`` (scalars or arrays) is not finite.

    Args:
        law: the law's name, for the message.
        what: what the values are ("compute-optimal values", ...), for the message.
        values: name -> value.
    """
    bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    if bad:
        raise FitError(
            f"{law}: the fitted law gives non-finite {what} ({', '.join(bad)}); the data do not "
            "determine them (check the ranges of the inputs and that the loss decreases with them)"
        )


def at_bounds(
    names: Sequence[str],
    theta: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    rtol: float = 1e-4,
) -> list[tuple[str, str, float]]:
    """``(name, "lower"|"upper", bound)`` for every coordinate of ``theta`` on its box."""
    out = []
    for name, t, lo, hi in zip(names, np.asarray(theta, dtype=float), lower, upper):
        tol = rtol * max(float(hi - lo), 1.0) if np.isfinite(hi - lo) else rtol
        if np.isfinite(lo) and t <= lo + tol:
            out.append((name, "lower", float(lo)))
        elif np.isfinite(hi) and t >= hi - tol:
            out.append((name, "upper", float(hi)))
    return out


def bound_warnings(
    law: str,
    hits: Sequence[tuple[str, str, float]],
    params: Mapping[str, float],
    hint: str,
    *,
    public: Mapping[str, str] | None = None,
    stacklevel: int = 3,
) -> list[str]:
    """One warning message naming the parameters on their bounds (empty list when none).

    Also issues it as a :class:`BoundWarning`, so scripts see it without reading the result.

    Args:
        law: the law's name.
        hits: the output of :func:`at_bounds`.
        params: the fitted public parameters (their values go into the message).
        hint: what data would identify those parameters.
        public: internal name -> public name (``{"log_C": "C"}``), when they differ.
        stacklevel: passed to ``warnings.warn`` (3: the caller of the law's ``fit``).
    """
    if not hits:
        return []
    public = public or {}
    parts = []
    for name, side, _ in hits:
        shown = public.get(name, name)
        value = params.get(shown)
        parts.append(f"{shown} = {value:.4g} ({side} bound)" if value is not None else shown)
    msg = (
        f"{law}: parameters at the bounds of the search, not determined by these data: "
        f"{', '.join(parts)}; {hint}"
    )
    warnings.warn(msg, BoundWarning, stacklevel=stacklevel)
    return [msg]
