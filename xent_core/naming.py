"""Component name rules: canonical names are lowercase kebab-case."""

from __future__ import annotations

import re

from .errors import XentError

KINDS: tuple[str, ...] = ("loss", "estimator", "kernel", "scaling_model")
_KIND_ALIASES = {
    "loss": "loss",
    "losses": "loss",
    "estimator": "estimator",
    "estimators": "estimator",
    "kernel": "kernel",
    "kernels": "kernel",
    "scaling_model": "scaling_model",
    "scaling-model": "scaling_model",
    "scaling_models": "scaling_model",
    "scaling-models": "scaling_model",
    "law": "scaling_model",
    "laws": "scaling_model",
}
_CANONICAL = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_name(name: str) -> str:
    """Lookup form of a name: lowercase, ``_`` and spaces turned into ``-``."""
    return re.sub(r"[_\s]+", "-", name.strip()).lower()


def kebab_from_identifier(identifier: str) -> str:
    """``CrossEntropyLoss`` -> ``cross-entropy-loss``; ``knn_entropy`` -> ``knn-entropy``."""
    return normalize_name(_CAMEL.sub("-", identifier))


def is_canonical(name: str) -> bool:
    """True when ``name`` is lowercase kebab-case."""
    return bool(_CANONICAL.match(name))


def normalize_kind(kind: str) -> str:
    """Map ``losses``/``scaling-model``/... to one of :data:`KINDS`; raise on anything else."""
    key = kind.strip().lower()
    if key not in _KIND_ALIASES:
        raise XentError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return _KIND_ALIASES[key]
