"""Checks of the options the fitters share (bootstrap count, seed, interval level).

Thin wrappers over :mod:`xent_core.validate`, so every law refuses a wrongly typed option (``"abc"``,
``None``, ``1.5`` for a count) with ``BadParameterError`` and the same message.
"""

from __future__ import annotations

from xent_core import BadParameterError
from xent_core.validate import integer, number, optional


def bootstrap_option(value: object) -> int:
    """A resample count: 0 (off) or an integer >= 2."""
    b = integer("bootstrap", value, low=0)
    if b == 1:
        raise BadParameterError(f"bootstrap must be 0 (off) or >= 2, got {value!r}")
    return b


def seed_option(value: object) -> int | None:
    """A seed for ``numpy.random.default_rng``: ``None`` or an integer >= 0."""
    return optional(integer, "seed", value, low=0)


def level_option(value: object) -> float:
    """The level of a percentile interval, in (0, 1)."""
    return number("level", value, low=0.0, high=1.0, low_open=True, high_open=True)
