"""Example inputs a component declares for itself, read by the testing kit and the sweeps.

A component whose inputs the generic ones (built from the guide's input names) cannot drive --
soft targets, (B, T) log-probabilities, probabilities that must sum to 1 -- declares small valid
inputs beside its code, as a static method or class method of its class (or an attribute of its
factory function)::

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:  # a loss
        return {"logprobs": -torch.rand(3, 5, generator=generator), ...}

    @staticmethod
    def example_inputs(generator: torch.Generator) -> tuple[Any, ...]:  # an estimator
        return (probs, rewards)  # its positional arguments

drawn only from ``generator`` (so a seed reproduces them). A loss's are its inputs by name (the
loss must give a finite value on them with its default parameters, plus any required ones); an
estimator's are the positional arguments of ``est(*args)``. xent's registry-wide sweep and
compile tests use them instead of the generic inputs, and :func:`xent_core.testing.example_inputs`
gives plugin authors the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .components import ComponentSpec

__all__ = ["EXAMPLE_INPUTS_HOOK", "example_inputs"]

#: the name of the hook a component may define
EXAMPLE_INPUTS_HOOK = "example_inputs"


def _target(component: Any) -> Any:
    if isinstance(component, ComponentSpec):
        return component.load()
    return component


def example_inputs(component: ComponentSpec | Callable[..., Any], seed: int = 0) -> Any:
    """The example inputs ``component`` declares, drawn with ``seed``; ``None`` if it has none.

    ``component`` is a :class:`~xent_core.ComponentSpec`, a component class, factory or
    instance. A loss's examples come back as a ``dict`` (name -> input), an estimator's as a
    ``tuple`` of positional arguments (a mapping is a loss's, anything else an estimator's).

    Args:
        component: the spec, class, factory or instance that may define ``example_inputs``.
        seed: seed of the ``torch.Generator`` handed to the hook.
    """
    make = getattr(_target(component), EXAMPLE_INPUTS_HOOK, None)
    if make is None:
        return None
    if not callable(make):
        raise TypeError(f"{EXAMPLE_INPUTS_HOOK} must be callable (generator) -> inputs")
    import torch

    out = make(torch.Generator().manual_seed(seed))
    kind = component.kind if isinstance(component, ComponentSpec) else None
    if isinstance(out, Mapping):
        if kind not in (None, "loss") or not all(isinstance(k, str) for k in out):
            raise TypeError(f"{EXAMPLE_INPUTS_HOOK} of a {kind} returned a mapping {out!r}")
        return dict(out)
    if isinstance(out, (tuple, list)) and kind != "loss":
        return tuple(out)
    raise TypeError(
        f"{EXAMPLE_INPUTS_HOOK} must return a dict of named inputs (a loss) or a tuple of "
        f"positional arguments (an estimator), got {type(out).__name__}"
    )
