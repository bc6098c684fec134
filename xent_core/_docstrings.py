"""Reading Google-style docstrings: the summary line and the ``Args:`` parameter descriptions.

A component documents its constructor parameters in an ``Args:`` section of its class (or
``__init__``) docstring, one entry per parameter::

    Args:
        temperature: softmax temperature applied to both logits (``> 0``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``; longer text may continue on
            more-indented lines.

An entry may carry a type in parentheses (``name (float): ...``), which is ignored.
"""

from __future__ import annotations

import inspect
import re

_HEADERS = frozenset({"Args:", "Arguments:"})
_ENTRY = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:(?:\s+(?P<desc>.*))?$")


def summary(doc: str) -> str:
    """The first non-blank line of ``doc``."""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def arg_descriptions(doc: str) -> dict[str, str]:
    """``{parameter: description}`` from the ``Args:`` sections of a docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    for i, header in enumerate(lines):
        if header.strip() not in _HEADERS:
            continue
        base, entry_indent, current = _indent(header), -1, ""
        for line in lines[i + 1 :]:
            if not line.strip():
                continue
            indent = _indent(line)
            if indent <= base:
                break
            if entry_indent < 0:
                entry_indent = indent
            match = _ENTRY.match(line.strip()) if indent == entry_indent else None
            if match:
                current = match["name"]
                out[current] = (match["desc"] or "").strip()
            elif indent > entry_indent and current:
                out[current] = f"{out[current]} {line.strip()}".strip()
            else:
                current = ""
    return out


def describe(names: list[str], docs: list[str]) -> dict[str, str]:
    """The description of each of ``names`` from the first of ``docs`` that has one."""
    found: dict[str, str] = {}
    for doc in docs:
        for name, text in arg_descriptions(doc).items():
            if name in names and text and name not in found:
                found[name] = text
    return found
