"""The base class of xent losses: a ``torch.nn.Module`` that composes with ``+`` and ``*``.

``forward``'s parameter names are the loss's input names (``logits``, ``targets``, ``hidden``,
``classifier``, ...), unless the class declares ``inputs``/``optional_inputs`` explicitly. Loss
stacks route keyword inputs to each term by these names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .stack import LossStack

Weight = float | Callable[[int], float]


class Loss(torch.nn.Module):
    """A loss module that can be weighted (``0.5 * loss``) and summed (``a + b``) into a stack."""

    def __add__(self, other: Any) -> LossStack:
        from .stack import LossStack

        return LossStack.of(self) + other

    def __radd__(self, other: Any) -> LossStack:
        from .stack import LossStack

        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return LossStack.of(self)
        return NotImplemented

    def __mul__(self, weight: Weight) -> LossStack:
        from .stack import LossStack

        if not (isinstance(weight, (int, float)) or callable(weight)):
            return NotImplemented
        return LossStack([(self, weight)])

    __rmul__ = __mul__


def declared_inputs(module: torch.nn.Module) -> tuple[str, ...] | None:
    """Input names the class declares with an ``inputs`` attribute (``None`` if it does not)."""
    declared = getattr(type(module), "inputs", None)
    if isinstance(declared, (tuple, list)) and all(isinstance(x, str) for x in declared):
        return tuple(declared)
    return None


def loss_inputs(module: torch.nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(required, optional)`` input names of a loss module."""
    declared = declared_inputs(module)
    if declared is not None:
        return declared, tuple(getattr(module, "optional_inputs", ()) or ())
    spec = getattr(module, "xent_spec", None)
    if spec is not None and (spec.inputs or spec.optional_inputs):
        return tuple(spec.inputs), tuple(spec.optional_inputs)
    required: list[str] = []
    optional: list[str] = []
    for p in inspect.signature(module.forward).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        (required if p.default is p.empty else optional).append(p.name)
    return tuple(required), tuple(optional)


def call_loss(module: torch.nn.Module, inputs: dict[str, Any]) -> Any:
    """Call ``module`` with the inputs it consumes from ``inputs`` (all required ones present).

    Declared ``inputs`` are passed positionally in their declared order (the class chose names
    that differ from its ``forward`` parameters); otherwise every input goes by keyword.
    """
    required, optional = loss_inputs(module)
    extra = {k: inputs[k] for k in optional if k in inputs}
    if declared_inputs(module) is not None:
        return module(*(inputs[k] for k in required), **extra)
    return module(**{k: inputs[k] for k in required}, **extra)
