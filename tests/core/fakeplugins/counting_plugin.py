"""A plugin that counts how often its hook runs (one registry must call it once)."""

import time

from xent_core import hookimpl

CALLS: list[int] = []


@hookimpl
def register_estimators(register):
    CALLS.append(1)
    time.sleep(0.05)  # widen the race window of a concurrent first get_registry()
    register("toy_losses:count_unique", name="counted")
