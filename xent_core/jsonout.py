"""JSON for ``--json`` outputs: strict RFC 8259 (no ``NaN``/``Infinity`` tokens) and one error shape.

Python's :func:`json.dumps` writes ``NaN`` and ``Infinity`` by default, which no strict JSON parser
accepts. :func:`dumps` writes non-finite numbers as ``null`` instead and turns NumPy/torch scalars
and arrays into plain numbers and lists; anything else unknown becomes its ``str``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "error_object"]


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy / torch scalars and arrays
    if callable(tolist):
        try:
            return _plain(tolist())
        except Exception:  # a foreign object with an unrelated tolist()
            return str(value)
    return str(value)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as strict JSON: non-finite floats become ``null``; unknown objects their str."""
    return json.dumps(_plain(value), indent=indent, allow_nan=False)


def error_object(exc: BaseException, exit_code: int) -> dict[str, Any]:
    """The object ``--json`` commands print on stdout when they fail."""
    return {
        "error": {
            "type": type(exc).__name__,
            "message": one_line(str(exc)),
            "exit_code": exit_code,
        }
    }


def one_line(message: str, limit: int = 500) -> str:
    """A message on one line (lines joined with spaces), cut at ``limit`` characters."""
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."
