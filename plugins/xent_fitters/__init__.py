"""xent plugin: Scaling-law models and the fitting engine.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy.
"""

from __future__ import annotations

from xent_core import hookimpl


@hookimpl
def register_scaling_models(register) -> None:  # type: ignore[no-untyped-def]
    """Register this plugin's components."""
