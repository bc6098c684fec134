"""Collision (Rényi order-2) entropy of discrete samples."""

from __future__ import annotations

import math

import numpy as np

from xent_core import BadInputError


class CollisionEntropy:
    """Collision entropy H2 = -log sum_k p_k^2 of the empirical distribution of discrete samples.

    Citation: Rényi, "On measures of entropy and information", Proc. 4th Berkeley Symposium,
    1961.

    Args:
        base: logarithm base of the result (e: nats, 2: bits).
    """

    citation = ("On measures of entropy and information", "Berkeley Symp. 1961")

    def __init__(self, base: float = math.e) -> None:
        if base <= 1:
            raise BadInputError(f"base must be > 1, got {base}")
        self.base = base

    def __call__(self, x, y=None, *, details: bool = False):  # type: ignore[no-untyped-def]
        values = np.asarray(x).ravel()
        if values.size == 0:
            raise BadInputError("collision entropy needs at least one sample")
        _, counts = np.unique(values, return_counts=True)
        p = counts / counts.sum()
        value = float(-math.log(float((p**2).sum())) / math.log(self.base))
        return (value, {"probabilities": p}) if details else value
