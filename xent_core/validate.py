"""Parameter validators shared by every plugin, first-party and third-party.

Each validator checks one constructor parameter and returns it in canonical form, or raises
:class:`~xent_core.BadParameterError` with a message that names the parameter, what it must be
and what it got. They import nothing heavy (no torch, no numpy), so a plugin can call them at
construction time at no cost::

    from xent_core import validate

    self.reduction = validate.reduction(reduction)
    self.temperature = validate.number("temperature", temperature, low=0, low_open=True)
    self.ignore_index = validate.integer("ignore_index", ignore_index)
    self.shift = validate.flag("shift", shift)

Booleans are never accepted as numbers, strings never as booleans, and floats never as integers
(``ignore_index=1.5`` is an error, not ``1``). Numbers are finite unless ``allow_inf`` says so.
NumPy scalars are accepted where the matching Python type is.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeGuard

from .errors import BadParameterError

__all__ = [
    "REDUCTIONS",
    "choice",
    "flag",
    "integer",
    "nonnegative",
    "number",
    "optional",
    "positive",
    "reduction",
    "unit_interval",
]

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
"""The reductions every loss accepts (PyTorch semantics)."""


def _is_bool(value: object) -> bool:
    """A Python or NumPy boolean (NumPy's is not a subclass of ``bool``)."""
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def _is_real(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_integral(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
    right = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
    return f"{left}, {right}"


def number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """A real number (not a bool or a string) inside the given bounds, returned as ``float``.

    Args:
        name: the parameter's name, used in the error message.
        value: what the caller passed.
        low: the lower bound, or ``None`` for none.
        high: the upper bound, or ``None`` for none.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        allow_inf: accept ``inf``/``-inf`` (NaN is never accepted).
    """
    if not _is_real(value):
        raise BadParameterError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise BadParameterError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        raise BadParameterError(
            f"{name} must lie in {_interval(low, high, low_open, high_open)}, got {value!r}"
        )
    return x


def positive(name: str, value: object) -> float:
    """A finite number > 0."""
    return number(name, value, low=0.0, low_open=True)


def nonnegative(name: str, value: object) -> float:
    """A finite number >= 0."""
    return number(name, value, low=0.0)


def unit_interval(
    name: str, value: object, *, open_low: bool = False, open_high: bool = False
) -> float:
    """A number in [0, 1] (either end can be excluded)."""
    return number(name, value, low=0.0, high=1.0, low_open=open_low, high_open=open_high)


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float such as ``1.0`` or ``1.5``) in ``[low, high]``."""
    if not _is_integral(value):
        raise BadParameterError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        )
    i = int(value)
    if (low is not None and i < low) or (high is not None and i > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise BadParameterError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return i


def flag(name: str, value: object) -> bool:
    """A real boolean: ``True``/``False`` (or a NumPy bool), never a truthy string or number."""
    if _is_bool(value):
        return bool(value)
    raise BadParameterError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of the given strings (exact match)."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise BadParameterError(f"{name} must be one of {listed}; got {value!r}")
    return value


def reduction(value: object, allowed: Iterable[str] = REDUCTIONS) -> str:
    """A reduction name: ``'mean'``, ``'sum'`` or ``'none'`` (or the subset in ``allowed``)."""
    return choice("reduction", value, allowed)


def optional(check: Any, name: str, value: object, *args: Any, **kwargs: Any) -> Any:
    """``None`` passes through; anything else goes to ``check(name, value, ...)``.

    Example: ``validate.optional(validate.positive, "softcap", softcap)``.
    """
    if value is None:
        return None
    return check(name, value, *args, **kwargs)
