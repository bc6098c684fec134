"""Collision (Rényi order-2) entropy of discrete samples."""

from __future__ import annotations

import math

import numpy as np

from xent_core import BadInputError, validate


class CollisionEntropy:
    """Collision entropy H2 = -log sum_k p_k^2 of the empirical distribution of discrete samples.

    Citation: Rényi, "On measures of entropy and information", Proc. 4th Berkeley Symposium,
    1961.

    Args:
        base: logarithm base of the result (> 1; e: nats, 2: bits).
    """

    citation = ("On measures of entropy and information", "Berkeley Symp. 1961")

    def __init__(self, base: float = math.e) -> None:
        self.base = validate.number("base", base, low=1.0, low_open=True)

    def __call__(self, x, y=None, *, details: bool = False):  # type: ignore[no-untyped-def]
        if x is None:
            raise BadInputError("collision entropy needs samples, got None")
        try:
            values = np.asarray(x).ravel()
        except ValueError as exc:  # ragged nested lists
            raise BadInputError(f"samples must form an array: {exc}") from exc
        if values.size == 0:
            raise BadInputError("collision entropy needs at least one sample")
        if values.dtype == object:
            raise BadInputError("samples must be numbers or strings, not Python objects")
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise BadInputError("samples contain NaN or inf")
        _, counts = np.unique(values, return_counts=True)
        p = counts / counts.sum()
        value = float(-math.log(float((p**2).sum())) / math.log(self.base)) + 0.0  # no -0.0
        return (value, {"probabilities": p}) if details else value
