"""A typed facade over the plugin manager: host code calls these, never ``pm.hook`` directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .hookspecs import Register, RegisterCommand


class PluginHooks:
    """Calls one plugin's implementation of a hook at a time, so one failure stays isolated."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def _caller(self, hook_name: str, plugin: object) -> Callable[..., Any]:
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        return self._pm.subset_hook_caller(hook_name, remove_plugins=others)

    def implements(self, hook_name: str, plugin: object) -> bool:
        callers = self._pm.get_hookcallers(plugin) or []
        return any(c.name == hook_name for c in callers)

    def register_components(self, hook_name: str, plugin: object, register: Register) -> None:
        """Call ``plugin``'s ``register_<kind>`` hook (one of :data:`hookspecs.KIND_HOOKS`)."""
        if hook_name not in hookspecs.KIND_HOOKS.values():
            raise ValueError(f"not a registration hook: {hook_name}")
        self._caller(hook_name, plugin)(register=register)

    def register_commands(self, plugin: object, register: RegisterCommand) -> None:
        """Call ``plugin``'s ``register_commands`` hook."""
        self._caller("register_commands", plugin)(register=register)
