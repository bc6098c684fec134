"""The Python API: list, describe and create components; build loss stacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .components import ComponentSpec
from .protocols import Estimator, Kernel, ScalingModel
from .registry import PluginInfo, get_registry
from .stack_spec import StackSpec, normalize_stack_spec

if TYPE_CHECKING:
    import torch

    from .base_loss import LossStack


def list_components(kind: str | None = None, plugin: str | None = None) -> list[ComponentSpec]:
    """Specs of the registered components, optionally of one kind and/or one plugin."""
    return get_registry().specs(kind, plugin)


def info(name: str, kind: str | None = None) -> ComponentSpec:
    """The spec of one component (short name, any case, or ``plugin:name``)."""
    return get_registry().get(name, kind)


def plugins() -> list[PluginInfo]:
    """Every plugin seen, with status ``loaded``, ``failed`` or ``blocked``."""
    return get_registry().plugins()


def loss(name: str, /, **params: Any) -> torch.nn.Module:
    """Create the loss ``name`` (a ``torch.nn.Module``) with ``params``."""
    return cast("torch.nn.Module", get_registry().create(name, "loss", **params))


def estimator(name: str, /, **params: Any) -> Estimator:
    """Create the estimator ``name`` with ``params``."""
    return cast(Estimator, get_registry().create(name, "estimator", **params))


def kernel(name: str, /, **params: Any) -> Kernel:
    """Create the kernel ``name``; check ``available()`` before heavy use."""
    return cast(Kernel, get_registry().create(name, "kernel", **params))


def scaling_model(name: str, /, **params: Any) -> ScalingModel:
    """Create the scaling-law model ``name`` with ``params``."""
    return cast(ScalingModel, get_registry().create(name, "scaling_model", **params))


def stack(spec: StackSpec) -> LossStack:
    """Build a :class:`~xent_core.base_loss.LossStack` from a string or a list of term dicts.

    ``stack("cross-entropy(label_smoothing=0.1) + 0.5*kd(temperature=2)")`` and
    ``stack([{"name": "cross-entropy", "params": {"label_smoothing": 0.1}},
    {"name": "kd", "weight": 0.5, "params": {"temperature": 2}}])`` build the same stack.
    """
    terms = normalize_stack_spec(spec)  # checked before torch is imported
    from .base_loss import LossStack  # lazy: importing xent_core must not import torch

    out = LossStack()
    for term in terms:
        out.add(loss(term["name"], **term["params"]), term["weight"])
    return out
