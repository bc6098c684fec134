"""Loss-stack specs: parse and check them without importing torch.

A spec is a one-line string (``"cross-entropy(label_smoothing=0.1) + 0.5*kd(temperature=2)"``),
a list of ``{"name", "weight", "params"}`` dicts, one such dict, or ``{"terms": [...]}``.
:func:`normalize_stack_spec` turns any of them into a list of checked term dicts; every mistake
is a :class:`~xent_core.BadParameterError` that quotes the offending part.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from . import validate
from .errors import BadParameterError

#: a term weight: a number, or a schedule ``weight(step) -> float``
Weight: TypeAlias = float | Callable[[int], float]

StackSpec: TypeAlias = str | Iterable[Mapping[str, Any]] | Mapping[str, Any]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(
    rf"^\s*(?:(?P<w1>{_NUMBER})\s*\*\s*)?"
    r"(?P<name>[A-Za-z][\w\-]*(?::[A-Za-z][\w\-]*)?)\s*(?:\((?P<args>.*)\))?"
    rf"\s*(?:\*\s*(?P<w2>{_NUMBER}))?\s*$",
    re.S,
)
_EXPONENT = re.compile(r"(?<![A-Za-z_\-])[0-9.]+[eE]$")


def check_weight(weight: object, term: str = "a stack term") -> Weight:
    """A finite real weight as ``float``, or a callable schedule; anything else is refused."""
    if callable(weight):
        return weight  # a schedule: its values are checked when it is called
    return validate.number(f"the weight of {term}", weight)


def _split_top_level(text: str, sep: str = "+") -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise BadParameterError(f"unbalanced parentheses in loss spec {text!r}")
        # a '+' inside an exponent (1e+3) is part of a number
        if ch == sep and depth == 0 and not _EXPONENT.search("".join(cur)):
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise BadParameterError(f"unbalanced parentheses in loss spec {text!r}")
    parts.append("".join(cur))
    return parts


def _term_params(args: str, name: str, part: str, text: str) -> dict[str, Any]:
    try:
        call = ast.parse(f"f({args})", mode="eval").body
    except SyntaxError as exc:
        raise BadParameterError(f"cannot parse parameters of {part!r}: {exc.msg}") from exc
    if not isinstance(call, ast.Call) or call.args:
        raise BadParameterError(f"parameters of {name!r} must be keyword=value")
    params: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise BadParameterError(f"'**' is not allowed in loss spec {text!r}")
        try:
            params[kw.arg] = ast.literal_eval(kw.value)
        except ValueError as exc:
            raise BadParameterError(
                f"parameter {kw.arg!r} of {name!r} must be a literal (number, string, "
                f"list, None, True/False), got {ast.unparse(kw.value)!r}"
            ) from exc
    return params


def parse_stack_spec(text: str) -> list[dict[str, Any]]:
    """Parse ``"ce(label_smoothing=0.1) + 0.5*kd(temperature=2)"`` into term dicts."""
    if not isinstance(text, str):
        raise BadParameterError(f"a loss spec string is expected, got {type(text).__name__}")
    if not text.strip():
        raise BadParameterError("empty loss spec")
    terms = []
    for raw in _split_top_level(text):
        part = raw.strip()
        m = _TERM.match(raw)
        if not m:
            raise BadParameterError(f"cannot parse loss term {part!r} in {text!r}")
        if m["w1"] and m["w2"]:
            raise BadParameterError(f"term {part!r} has two weights")
        weight = check_weight(float(m["w1"] or m["w2"] or 1.0), repr(part))
        args = m["args"]
        params = _term_params(args, m["name"], part, text) if args and args.strip() else {}
        terms.append({"name": m["name"], "weight": weight, "params": params})
    return terms


def _term(item: object) -> dict[str, Any]:
    if not isinstance(item, Mapping) or "name" not in item:
        raise BadParameterError(f"each stack term must be a dict with a 'name', got {item!r}")
    extra = set(item) - {"name", "weight", "params"}
    if extra:
        raise BadParameterError(f"unknown key(s) {sorted(extra)} in stack term {item!r}")
    name = item["name"]
    if not isinstance(name, str) or not name.strip():
        raise BadParameterError(
            f"the name of a stack term must be a non-empty string, got {name!r}"
        )
    params = item.get("params") or {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise BadParameterError(f"the params of {name!r} must be a dict of keyword arguments")
    weight = check_weight(item.get("weight", 1.0), repr(name))
    return {"name": name, "weight": weight, "params": dict(params)}


def normalize_stack_spec(spec: StackSpec) -> list[dict[str, Any]]:
    """Turn any accepted spec form into a list of ``{"name", "weight", "params"}`` dicts."""
    if isinstance(spec, str):
        return parse_stack_spec(spec)
    if isinstance(spec, Mapping):
        if "terms" in spec:
            return normalize_stack_spec(spec["terms"])
        return [_term(spec)]
    if isinstance(spec, (bytes, bytearray)) or not isinstance(spec, Iterable):
        raise BadParameterError(
            "a loss stack spec is a string, a dict or a list of dicts, "
            f"got {type(spec).__name__}: {spec!r}"
        )
    return [_term(item) for item in spec]
