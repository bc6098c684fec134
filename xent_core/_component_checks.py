"""Checks of what a plugin registers and of what a caller passes to a component."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .components import ComponentSpec
from .errors import BadParameterError, RegistrationError


def check_params(spec: ComponentSpec, params: Mapping[str, Any]) -> None:
    """Raise :class:`BadParameterError` for unknown or missing parameters."""
    valid = spec.param_names
    unknown = [p for p in params if p not in valid]
    if unknown and not spec.accepts_extra_params:
        listing = ", ".join(valid) if valid else "none"
        raise BadParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {spec.kind.replace('_', ' ')} "
            f"{spec.name!r}; valid parameters: {listing}"
        )
    missing = [p.name for p in spec.params if p.required and p.name not in params]
    if missing:
        raise BadParameterError(
            f"{spec.kind.replace('_', ' ')} {spec.name!r} needs parameter(s): {', '.join(missing)}"
        )


#: capability keys whose values xent reads, with the check each must pass
_CAPABILITY_TYPES: dict[str, str] = {
    "requires": "a list of module names (strings)",
    "devices": "a list of device names (strings)",
    "differentiable": "True or False",
    "emulation": 'a dict {"env": "NAME=VALUE", "note": "..."} of strings',
}


def check_capabilities(qid: str, caps: Any) -> None:
    """Raise :class:`RegistrationError` unless ``caps`` is a mapping xent can read.

    ``requires`` and ``devices`` must be lists or tuples of strings (a bare string such as
    ``"cpu"`` is refused: it would be read letter by letter), ``differentiable`` a bool and
    ``emulation`` a dict with a string ``env`` (``NAME=VALUE``) and an optional string ``note``.
    Other keys are kept as free-form metadata.
    """
    if not isinstance(caps, Mapping):
        raise RegistrationError(
            f"{qid}: capabilities must be a dict, got {caps!r} ({type(caps).__name__})"
        )
    for key, value in caps.items():
        if not isinstance(key, str):
            raise RegistrationError(f"{qid}: capability keys must be strings, got {key!r}")
        if key in ("requires", "devices"):
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        elif key == "differentiable":
            ok = isinstance(value, bool)
        elif key == "emulation":
            ok = (
                isinstance(value, Mapping)
                and set(value) <= {"env", "note"}
                and isinstance(value.get("env"), str)
                and "=" in value["env"].strip("=")
                and isinstance(value.get("note", ""), str)
            )
        else:
            continue
        if not ok:
            raise RegistrationError(
                f"{qid}: capabilities[{key!r}] must be {_CAPABILITY_TYPES[key]}, got {value!r}"
            )
