"""An example xent plugin: registers one loss and one estimator through the ``xent`` entry point."""

from __future__ import annotations

from xent_core import Register, hookimpl


@hookimpl
def register_losses(register: Register) -> None:
    register("xent_plugin_example.brier:BrierLoss", name="brier")


@hookimpl
def register_estimators(register: Register) -> None:
    register("xent_plugin_example.collision:CollisionEntropy", name="collision-entropy")
