"""Where plugins come from: the ``xent`` entry-point group, and each plugin's load status."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .naming import normalize_name

ENTRY_POINT_GROUP = "xent"
FIRST_PARTY_DISTRIBUTION = "xent"


@dataclass
class PluginInfo:
    """Load status of one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "pending"  # loaded | failed | blocked
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def first_party(self) -> bool:
        return self.distribution == FIRST_PARTY_DISTRIBUTION

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "first_party": self.first_party,
            "status": self.status,
            "error": self.error,
            "components": dict(self.counts),
        }


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from: an entry point, or a module object / import path for tests."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    loader: Callable[[], object] | None = None

    def load(self) -> object:
        if self.loader is not None:
            return self.loader()
        return importlib.import_module(self.module)


def split_env(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {normalize_name(v) for v in value.split(",") if v.strip()}


def discover_entry_points(group: str = ENTRY_POINT_GROUP) -> list[PluginSource]:
    """All entry points of ``group``, first-party first, each as a :class:`PluginSource`."""
    sources: list[PluginSource] = []
    seen: set[tuple[str, str]] = set()
    for ep in metadata.entry_points(group=group):
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        dist = getattr(ep, "dist", None)
        sources.append(
            PluginSource(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
                loader=ep.load,
            )
        )
    sources.sort(key=lambda s: (s.distribution != FIRST_PARTY_DISTRIBUTION, s.name))
    return sources
