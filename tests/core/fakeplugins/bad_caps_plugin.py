"""A plugin that registers malformed ``capabilities`` (the case is chosen by XENT_TEST_BAD_CAPS)."""

import os

from xent_core import hookimpl

CASES = {
    "requires-int": {"requires": 42},
    "devices-str": {"devices": "cpu"},
    "not-a-dict": 7,
    "differentiable-str": {"differentiable": "yes"},
}


@hookimpl
def register_losses(register):
    register(
        "toy_losses:ToySquare",
        name="bad-caps",
        capabilities=CASES[os.environ.get("XENT_TEST_BAD_CAPS", "requires-int")],
    )
