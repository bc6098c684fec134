"""Component specs: describe a registered target as the frozen :class:`ComponentSpec` record.

A lazy ``"module:attr"`` target is read statically from its source (:mod:`xent_core._static`), so
``xent list`` and ``xent info`` never import torch or triton; a live object is read with
:mod:`inspect` (:mod:`xent_core._live`). The parts of a spec (:class:`Param`, :class:`Citation`)
live in :mod:`xent_core._records` and are re-exported here.

Class attributes a component may declare (literals, so they can be read statically):

``citation``
    ``("Title", "arXiv:XXXX.XXXXX")`` or a tuple of such pairs.
``inputs`` / ``optional_inputs``
    input names of a loss, overriding those read from ``forward``.
``capabilities``
    a dict such as ``{"differentiable": True, "devices": ("cpu", "cuda"), "requires": ("triton",)}``.
    A GPU-only component that an emulator can run on the CPU adds ``"emulation": {"env":
    "NAME=VALUE", "note": "what differs there"}``: availability then names the variable and the
    note (e.g. ``cce-triton`` under ``TRITON_INTERPRET=1`` refuses bfloat16).

A component may also define an ``example_inputs(generator)`` static method returning small valid
inputs (read by :func:`xent_core.testing.example_inputs`; see :mod:`xent_core._examples`).

Parameters are documented in a Google-style ``Args:`` section of the class (or ``__init__``)
docstring; each entry becomes the parameter's :attr:`Param.description`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from ._docstrings import summary as doc_summary
from ._live import live_meta
from ._records import Citation, Meta, Param, normalize_citations
from ._static import static_meta
from .errors import RegistrationError, XentError

__all__ = [
    "Citation",
    "ComponentSpec",
    "Param",
    "build_spec",
    "cuda_visible",
    "normalize_citations",
]


@dataclass(frozen=True)
class ComponentSpec:
    """Everything xent knows about a registered component, without importing it."""

    name: str
    kind: str
    plugin: str
    target: str | Callable[..., Any] = field(repr=False, compare=False)
    summary: str = ""
    doc: str = ""
    params: tuple[Param, ...] = ()
    accepts_extra_params: bool = False
    inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    citations: tuple[Citation, ...] = ()
    distribution: str | None = None
    version: str | None = None

    @property
    def qualified_id(self) -> str:
        """``plugin:name``, unique across the registry."""
        return f"{self.plugin}:{self.name}"

    @property
    def target_path(self) -> str:
        """The ``module:attr`` of the implementation."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def requirements(self) -> dict[str, bool]:
        """Packages the component needs, each mapped to whether it is importable here."""
        needs = self.capabilities.get("requires", ())
        return {mod: importlib.util.find_spec(mod) is not None for mod in needs}

    def availability(self) -> tuple[bool, str]:
        """Whether the component can run here, judged without importing it (or torch).

        Checks the packages named in ``capabilities["requires"]`` and, when
        ``capabilities["devices"]`` excludes ``"cpu"``, that an NVIDIA device is visible. With
        ``capabilities["emulation"]`` (``{"env": "NAME=VALUE", "note": ...}``) the variable set
        means the component runs in that emulator, and the text says so with the note; unset on
        a machine without a GPU, the text names it as the way to run on the CPU. A kernel's own
        ``available()`` gives the exact answer once it is created.
        """
        missing = [mod for mod, ok in self.requirements().items() if not ok]
        if missing:
            return False, "needs " + ", ".join(missing)
        emulation = self.capabilities.get("emulation")
        if isinstance(emulation, Mapping):
            env, note = str(emulation.get("env", "")), str(emulation.get("note", ""))
            name, _, value = env.partition("=")
            if name and os.environ.get(name) == value:
                return True, f"yes, emulated ({env}): {note}" if note else f"yes, emulated ({env})"
        devices = tuple(self.capabilities.get("devices", ()))
        if devices and "cpu" not in devices and not cuda_visible():
            why = f"needs {'/'.join(devices)} (no GPU visible)"
            if isinstance(emulation, Mapping) and emulation.get("env"):
                hint = f"; on the CPU with {emulation['env']}"
                why += hint + (f" ({emulation['note']})" if emulation.get("note") else "")
            return False, why
        return True, "yes"

    def load(self) -> Callable[..., Any]:
        """Import and return the implementation (class or factory)."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a broken component must not look like a missing one
            raise XentError(
                f"component {self.qualified_id!r} failed to import {self.target!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return cast("Callable[..., Any]", obj)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (used by ``--json`` outputs and docs)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.qualified_id,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target_path,
            "summary": self.summary,
            "params": [p.to_dict() for p in self.params],
            "inputs": list(self.inputs),
            "optional_inputs": list(self.optional_inputs),
            "capabilities": _jsonable(dict(self.capabilities)),
            "requirements": self.requirements(),
            "available": self.availability()[0],
            "availability": self.availability()[1],
            "citations": [{"title": c.title, "arxiv": c.arxiv} for c in self.citations],
            "doc": self.doc,
        }


def cuda_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (no torch import)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def build_spec(
    *,
    target: str | Callable[..., Any],
    name: str,
    kind: str,
    plugin: str,
    summary: str | None = None,
    citation: Any = None,
    inputs: tuple[str, ...] | list[str] | None = None,
    optional_inputs: tuple[str, ...] | list[str] | None = None,
    capabilities: Mapping[str, Any] | None = None,
    distribution: str | None = None,
    version: str | None = None,
) -> ComponentSpec:
    """Describe a component from its target; explicit arguments override what is read."""
    meta: Meta
    if isinstance(target, str):
        if ":" not in target:
            raise RegistrationError(f"lazy target {target!r} must look like 'package.module:attr'")
        read = static_meta(target)
        if read is None:
            # The source could not be read statically (C extension, nested attr, ...): import it.
            try:
                module_name, _, attr = target.partition(":")
                obj: Any = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:
                raise RegistrationError(f"cannot resolve target {target!r}: {exc}") from exc
            read = live_meta(obj)
        meta = read
    elif callable(target):
        meta = live_meta(target)
    else:
        raise RegistrationError(
            f"cannot register {target!r}: expected a class, a factory or a 'module:attr' string"
        )
    attrs = meta.attrs
    raw_inputs = inputs if inputs is not None else attrs.get("inputs", meta.inputs)
    raw_optional = (
        optional_inputs
        if optional_inputs is not None
        else attrs.get("optional_inputs", meta.optional_inputs)
    )
    caps = dict(attrs.get("capabilities") or {})
    caps.update(capabilities or {})
    return ComponentSpec(
        name=name,
        kind=kind,
        plugin=plugin,
        target=target,
        summary=summary if summary is not None else doc_summary(meta.doc),
        doc=meta.doc,
        params=tuple(meta.params),
        accepts_extra_params=meta.accepts_extra_params,
        inputs=tuple(raw_inputs) if kind == "loss" else (),
        optional_inputs=tuple(raw_optional) if kind == "loss" else (),
        capabilities=caps,
        citations=normalize_citations(citation if citation is not None else attrs.get("citation")),
        distribution=distribution,
        version=version,
    )
