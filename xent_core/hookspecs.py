"""Pluggy hook specifications: one registration hook per component kind, plus CLI commands.

A plugin module implements any of these with ``@xent_core.hookimpl``. Each hook receives a
``register`` callable bound to the plugin and the kind::

    @hookimpl
    def register_losses(register):
        register("my_plugin.focal:Focal", name="my-focal")

``register(obj, name=..., **metadata)`` accepts a component class, a factory callable, or a lazy
``"module:attr"`` string (preferred: nothing is imported until the component is created).
Optional keyword metadata overrides what is read from the target: ``summary``, ``citation``,
``inputs``, ``optional_inputs``, ``capabilities``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT = "xent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The ``register`` callable handed to registration hooks."""

    def __call__(self, obj: Any, name: str | None = None, **metadata: Any) -> None: ...


class RegisterCommand(Protocol):
    """The ``register`` callable handed to :func:`register_commands`.

    ``obj`` is a function (added as a command) or a ``typer.Typer`` (added as a command group).
    """

    def __call__(self, obj: Callable[..., Any] | Any, name: str | None = None) -> None: ...


@hookspec
def register_losses(register: Register) -> None:
    """Register loss components (``torch.nn.Module`` classes whose ``forward`` names the inputs)."""


@hookspec
def register_estimators(register: Register) -> None:
    """Register estimators of entropy and information."""


@hookspec
def register_kernels(register: Register) -> None:
    """Register compute kernels (each exposes ``available() -> (bool, reason)``)."""


@hookspec
def register_scaling_models(register: Register) -> None:
    """Register scaling-law models (each has ``fit(data) -> FitResult``)."""


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Register ``xent`` sub-commands (Typer command functions or Typer apps)."""


#: hook name for each component kind
KIND_HOOKS: dict[str, str] = {
    "loss": "register_losses",
    "estimator": "register_estimators",
    "kernel": "register_kernels",
    "scaling_model": "register_scaling_models",
}
