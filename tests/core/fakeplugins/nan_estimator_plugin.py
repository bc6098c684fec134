"""A plugin whose estimator returns non-finite values (``--json`` must still be strict JSON)."""

import math

from xent_core import hookimpl


class NanEstimator:
    """Returns NaN, with infinite details."""

    units = "nats"

    def __init__(self, value: float = math.nan) -> None:
        self.value = value

    def __call__(self, x, y=None, details: bool = False):
        info = {"upper": math.inf, "lower": -math.inf, "pair": (1.0, math.nan)}
        return (self.value, info) if details else self.value


@hookimpl
def register_estimators(register):
    register(NanEstimator, name="nan-estimator")
