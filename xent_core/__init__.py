"""xent core: plugin registry, component specs, loss stacks and the Python API.

Importing ``xent_core`` does not import torch: ``Loss``, ``LossStack`` and the testing kit are
loaded on first access. The modules, each with one job (no import cycles, each importable alone):

- ``api``: the factories (``loss``, ``estimator``, ``kernel``, ``scaling_model``, ``stack``);
- ``registry`` (with ``_sources``, ``_component_checks``, ``_hooks``): loads plugins, holds specs;
- ``hookspecs``: the pluggy hooks and the ``Register`` callables they receive;
- ``components`` (with ``_records``, ``_static``, ``_live``, ``_docstrings``): a component's
  spec, read from its source without importing it, or from the live object;
- ``protocols``: what a kernel, an estimator and a scaling model provide;
- ``base_loss``: ``Loss`` and ``LossStack`` (torch); ``stack_spec``: the stack-spec parser;
- ``validate``, ``errors``, ``naming``, ``checks``: parameter validators, the exception
  hierarchy, name rules, the data-dependent input-check switch;
- ``cli``, ``catalogue``, ``jsonout``, ``testing``: the ``xent`` command, ``docs/components.md``,
  JSON output, the plugin author kit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import validate
from .api import (
    estimator,
    info,
    kernel,
    list_components,
    loss,
    plugins,
    scaling_model,
    stack,
)
from .checks import input_checks, input_checks_enabled
from .components import Citation, ComponentSpec, Param
from .errors import (
    AmbiguousComponentError,
    BadInputError,
    BadParameterError,
    FitError,
    NotAvailableError,
    PluginLoadError,
    RegistrationError,
    UnknownComponentError,
    XentError,
)
from .hookspecs import Register, RegisterCommand, hookimpl
from .protocols import Estimator, Kernel, ScalingModel
from .registry import PluginInfo, Registry, get_registry, set_registry

if TYPE_CHECKING:
    from .base_loss import Loss, LossStack
    from .integrations.torchmetrics import metric

__version__ = "0.1.0"

__all__ = [
    "AmbiguousComponentError",
    "BadInputError",
    "BadParameterError",
    "Citation",
    "ComponentSpec",
    "Estimator",
    "FitError",
    "Kernel",
    "Loss",
    "LossStack",
    "NotAvailableError",
    "Param",
    "PluginInfo",
    "PluginLoadError",
    "Register",
    "RegisterCommand",
    "Registry",
    "RegistrationError",
    "ScalingModel",
    "UnknownComponentError",
    "XentError",
    "__version__",
    "estimator",
    "get_registry",
    "hookimpl",
    "info",
    "input_checks",
    "input_checks_enabled",
    "kernel",
    "list_components",
    "loss",
    "metric",
    "plugins",
    "scaling_model",
    "set_registry",
    "stack",
    "validate",
]


def __getattr__(name: str) -> Any:
    """``Loss`` and ``LossStack`` import torch, so they are loaded on first access."""
    if name in ("Loss", "LossStack"):
        return getattr(importlib.import_module(".base_loss", __name__), name)
    if name == "metric":  # a torchmetrics Metric: imports torchmetrics, so only on first access
        return importlib.import_module(".integrations.torchmetrics", __name__).metric
    raise AttributeError(f"module 'xent_core' has no attribute {name!r}")
