"""Constructor parameters shared by the distillation losses, checked with ``xent_core.validate``.

Each helper returns the parameter in canonical form or raises ``BadParameterError`` naming it:
no bools or strings as numbers, no floats as integers (``ignore_index=1.5`` is an error), no
truthy strings as flags (``normalize="false"`` is an error, not ``True``).
"""

from __future__ import annotations

from xent_core import validate

TAILS = ("bucket", "renormalise")
VOCAB_ALIGN = ("error", "truncate")


def temperature(value: object) -> float:
    """``temperature``: a finite number > 0."""
    return validate.positive("temperature", value)


def tail(value: object) -> str:
    """``tail`` of a top-k teacher: ``"bucket"`` or ``"renormalise"`` (``"renormalize"`` too)."""
    return "renormalise" if value == "renormalize" else validate.choice("tail", value, TAILS)


def vocab_align(value: object) -> str:
    """``vocab_align``: ``"error"`` or ``"truncate"``."""
    return validate.choice("vocab_align", value, VOCAB_ALIGN)


def ignore_index(value: object) -> int:
    """``ignore_index``: an integer (not a float, not a bool)."""
    return validate.integer("ignore_index", value)


def reduction(value: object, allowed: tuple[str, ...] = validate.REDUCTIONS) -> str:
    """``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (or the subset ``allowed``)."""
    return validate.reduction(value, allowed)


def flag(name: str, value: object) -> bool:
    """A real boolean (``True``/``False``)."""
    return validate.flag(name, value)


def weight(name: str, value: object) -> float:
    """A finite number >= 0 (a term's weight)."""
    return validate.nonnegative(name, value)


def mixture(name: str, value: object) -> float:
    """A mixture weight in [0, 1] (``beta``, ``alpha``)."""
    return validate.unit_interval(name, value)


def softcap(value: object) -> float | None:
    """``softcap``: None or a finite number > 0."""
    return validate.optional(validate.positive, "softcap", value)  # type: ignore[no-any-return]


def chunk_size(value: object) -> int | None:
    """``chunk_size``: None (vocabulary-aware default) or an integer >= 1."""
    return validate.optional(validate.integer, "chunk_size", value, low=1)  # type: ignore[no-any-return]


def top_k(value: object) -> int | None:
    """``top_k``: None (all) or an integer >= 1."""
    return validate.optional(validate.integer, "top_k", value, low=1)  # type: ignore[no-any-return]
