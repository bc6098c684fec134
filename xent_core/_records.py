"""The parts of a component spec: :class:`Param`, :class:`Citation`, and :class:`Meta`.

:class:`Meta` is what a reader found in a target: the static reader (:mod:`xent_core._static`)
for lazy ``"module:attr"`` targets, the live reader (:mod:`xent_core._live`) for objects.
:func:`xent_core.components.build_spec` turns it into a :class:`~xent_core.components.ComponentSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RegistrationError

MISSING_REPR = "<required>"


@dataclass(frozen=True)
class Param:
    """One constructor parameter of a component."""

    name: str
    annotation: str = ""
    default: str = MISSING_REPR
    required: bool = True
    #: the parameter's entry in the ``Args:`` section of the component's docstring
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "annotation": self.annotation,
            "default": None if self.required else self.default,
            "required": self.required,
            "description": self.description,
        }


@dataclass(frozen=True)
class Citation:
    """A reference: title and arXiv id (or another identifier)."""

    title: str
    arxiv: str = ""

    def __str__(self) -> str:
        return f"{self.title} ({self.arxiv})" if self.arxiv else self.title


@dataclass
class Meta:
    """What a reader found in a target: docstring, parameters, inputs, literal class attributes."""

    doc: str = ""
    params: list[Param] = field(default_factory=list)
    accepts_extra_params: bool = False
    inputs: list[str] = field(default_factory=list)
    optional_inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def normalize_citations(raw: Any) -> tuple[Citation, ...]:
    """Accept ``("Title", "arXiv:id")``, a list of those, a str, or Citation objects."""
    if raw is None or raw == () or raw == []:
        return ()
    if isinstance(raw, Citation):
        return (raw,)
    if isinstance(raw, str):
        return (Citation(raw),)
    if isinstance(raw, Mapping):
        return (Citation(str(raw.get("title", "")), str(raw.get("arxiv", ""))),)
    if isinstance(raw, (tuple, list)):
        if len(raw) == 2 and all(isinstance(x, str) for x in raw):
            return (Citation(raw[0], raw[1]),)
        out: list[Citation] = []
        for item in raw:
            out.extend(normalize_citations(item))
        return tuple(out)
    raise RegistrationError(f"cannot read citation {raw!r}")
