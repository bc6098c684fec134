"""Loss stacks: weighted sums of losses whose keyword inputs are routed to each term by name.

Build one with operators (``xent_core.loss("cross-entropy") + 0.5 * xent_core.loss("kd")``), from
a list of ``{"name", "weight", "params"}`` dicts, or from a one-line string such as
``"cross-entropy(label_smoothing=0.1) + 0.5*kd(temperature=2)"`` (see :func:`parse_stack_spec`).
"""

from __future__ import annotations

import ast
import re
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .base_loss import Loss, Weight, call_loss, loss_inputs
from .errors import BadInputError, BadParameterError
from .naming import kebab_from_identifier


def _scaled(weight: Weight, factor: float) -> Weight:
    if factor == 1:
        return weight
    if callable(weight):
        return lambda step, _w=weight, _f=factor: _f * _w(step)
    return factor * weight


class LossStack(Loss):
    """A weighted sum of loss terms.

    Calling the stack with keyword inputs passes each term the inputs it declares and returns the
    weighted sum (a scalar tensor). After a call, :attr:`last_values` holds each term's unweighted
    value and :attr:`last_weighted` its weighted value (detached tensors; :meth:`log_dict` gives
    floats). A weight may be a number or a schedule ``weight(step) -> float``; :attr:`step`
    counts training-mode calls unless set explicitly.
    """

    def __init__(
        self, terms: Iterable[tuple[torch.nn.Module, Weight]] = (), names: Iterable[str] = ()
    ) -> None:
        super().__init__()
        self.terms = torch.nn.ModuleList()
        self.weights: list[Weight] = []
        self.term_names: list[str] = []
        self.step = 0
        self.last_values: dict[str, torch.Tensor] = {}
        self.last_weighted: dict[str, torch.Tensor] = {}
        names = list(names)
        for i, (module, weight) in enumerate(terms):
            self.add(module, weight, names[i] if i < len(names) else None)

    @classmethod
    def of(cls, module: torch.nn.Module) -> LossStack:
        """A one-term stack (or ``module`` itself if it is already a stack)."""
        return module if isinstance(module, LossStack) else cls([(module, 1.0)])

    def add(
        self, module: torch.nn.Module, weight: Weight = 1.0, name: str | None = None
    ) -> LossStack:
        """Append a term; returns ``self``."""
        if not isinstance(module, torch.nn.Module):
            raise BadParameterError(
                f"a stack term must be a torch.nn.Module, got {type(module).__name__}"
            )
        if not (isinstance(weight, (int, float)) or callable(weight)):
            raise BadParameterError(
                f"a stack weight must be a number or a callable of the step, got {weight!r}"
            )
        base = name or _term_name(module)
        unique, k = base, 2
        while unique in self.term_names:
            unique, k = f"{base}#{k}", k + 1
        self.terms.append(module)
        self.weights.append(float(weight) if isinstance(weight, (int, float)) else weight)
        self.term_names.append(unique)
        return self

    def _copy_terms(self) -> list[tuple[torch.nn.Module, Weight, str]]:
        return list(zip(self.terms, self.weights, self.term_names))

    def __add__(self, other: Any) -> LossStack:
        if isinstance(other, LossStack):
            extra = other._copy_terms()
        elif isinstance(other, torch.nn.Module):
            extra = [(other, 1.0, None)]
        else:
            return NotImplemented
        out = LossStack()
        for m, w, n in [*self._copy_terms(), *extra]:
            out.add(m, w, n)
        return out

    def __mul__(self, factor: Any) -> LossStack:
        if not isinstance(factor, (int, float)):
            return NotImplemented
        out = LossStack()
        for m, w, n in self._copy_terms():
            out.add(m, _scaled(w, float(factor)), n)
        return out

    __rmul__ = __mul__

    def weight_at(self, index: int, step: int | None = None) -> float:
        """The weight of term ``index`` at ``step`` (default: the current step)."""
        w = self.weights[index]
        return float(w(self.step if step is None else step)) if callable(w) else float(w)

    def inputs(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Each term's ``(required, optional)`` inputs."""
        return {n: loss_inputs(m) for n, m in zip(self.term_names, self.terms)}

    def forward(self, **inputs: Any) -> torch.Tensor:  # type: ignore[override]
        if not self.terms:
            raise BadInputError("the loss stack has no terms")
        used: set[str] = set()
        total: torch.Tensor | None = None
        values: dict[str, torch.Tensor] = {}
        weighted: dict[str, torch.Tensor] = {}
        for i, (name, module) in enumerate(zip(self.term_names, self.terms)):
            required, optional = loss_inputs(module)
            missing = [r for r in required if r not in inputs]
            if missing:
                raise BadInputError(
                    f"loss stack term {name!r} needs input(s) {', '.join(map(repr, missing))} "
                    f"(given: {', '.join(sorted(inputs)) or 'nothing'})"
                )
            used.update(k for k in (*required, *optional) if k in inputs)
            out = call_loss(module, inputs)
            value = out[0] if isinstance(out, (tuple, list)) else getattr(out, "loss", out)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = (
                    tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                )
                raise BadInputError(
                    f"loss stack term {name!r} returned {shape}, not a scalar: "
                    "use reduction='mean' or 'sum' inside a stack"
                )
            value = value.reshape(())
            w = self.weight_at(i)
            term = value * w
            values[name], weighted[name] = value.detach(), term.detach()
            total = term if total is None else total + term
        unused = sorted(set(inputs) - used)
        if unused:
            raise BadInputError(
                f"input(s) {', '.join(map(repr, unused))} are not used by any term of the stack "
                f"({', '.join(self.term_names)})"
            )
        self.last_values, self.last_weighted = values, weighted
        if self.training:
            self.step += 1
        assert total is not None
        return total

    def log_dict(self, prefix: str = "loss/") -> dict[str, float]:
        """Floats for logging: unweighted term values and the last total."""
        out = {f"{prefix}{k}": float(v) for k, v in self.last_values.items()}
        if self.last_weighted:
            out[f"{prefix}total"] = float(sum(float(v) for v in self.last_weighted.values()))
        return out

    def extra_repr(self) -> str:
        parts = []
        for i, n in enumerate(self.term_names):
            w = self.weights[i]
            parts.append(f"{'schedule' if callable(w) else w}*{n}")
        return " + ".join(parts)


def _term_name(module: torch.nn.Module) -> str:
    spec = getattr(module, "xent_spec", None)
    return spec.name if spec is not None else kebab_from_identifier(type(module).__name__)


# ------------------------------------------------------------------------- spec parsing
_TERM = re.compile(
    r"^\s*(?:(?P<w1>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*\*\s*)?"
    r"(?P<name>[A-Za-z][\w\-]*(?::[A-Za-z][\w\-]*)?)\s*(?:\((?P<args>.*)\))?"
    r"\s*(?:\*\s*(?P<w2>[-+]?[0-9.]+(?:[eE][-+]?\d+)?))?\s*$",
    re.S,
)


_EXPONENT = re.compile(r"(?<![A-Za-z_\-])[0-9.]+[eE]$")


def _split_top_level(text: str, sep: str = "+") -> list[str]:
    parts, depth, cur = [], 0, []
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


def parse_stack_spec(text: str) -> list[dict[str, Any]]:
    """Parse ``"ce(label_smoothing=0.1) + 0.5*kd(temperature=2)"`` into term dicts."""
    if not text.strip():
        raise BadParameterError("empty loss spec")
    terms = []
    for part in _split_top_level(text):
        m = _TERM.match(part)
        if not m:
            raise BadParameterError(f"cannot parse loss term {part.strip()!r} in {text!r}")
        if m["w1"] and m["w2"]:
            raise BadParameterError(f"term {part.strip()!r} has two weights")
        weight = float(m["w1"] or m["w2"] or 1.0)
        params: dict[str, Any] = {}
        if m["args"] and m["args"].strip():
            try:
                call = ast.parse(f"f({m['args']})", mode="eval").body
            except SyntaxError as exc:
                raise BadParameterError(
                    f"cannot parse parameters of {part.strip()!r}: {exc.msg}"
                ) from exc
            assert isinstance(call, ast.Call)
            if call.args:
                raise BadParameterError(f"parameters of {m['name']!r} must be keyword=value")
            for kw in call.keywords:
                if kw.arg is None:
                    raise BadParameterError(f"'**' is not allowed in loss spec {text!r}")
                try:
                    params[kw.arg] = ast.literal_eval(kw.value)
                except ValueError as exc:
                    raise BadParameterError(
                        f"parameter {kw.arg!r} of {m['name']!r} must be a literal (number, string, "
                        f"list, None, True/False), got {ast.unparse(kw.value)!r}"
                    ) from exc
        terms.append({"name": m["name"], "weight": weight, "params": params})
    return terms


def normalize_stack_spec(
    spec: str | Iterable[Mapping[str, Any]] | Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Turn any accepted spec form into a list of ``{"name", "weight", "params"}`` dicts."""
    if isinstance(spec, str):
        return parse_stack_spec(spec)
    if isinstance(spec, Mapping):
        if "terms" in spec:
            return normalize_stack_spec(spec["terms"])
        spec = [spec]
    out = []
    for item in spec:
        if not isinstance(item, Mapping) or "name" not in item:
            raise BadParameterError(f"each stack term must be a dict with a 'name', got {item!r}")
        extra = set(item) - {"name", "weight", "params"}
        if extra:
            raise BadParameterError(f"unknown key(s) {sorted(extra)} in stack term {item!r}")
        weight = item.get("weight", 1.0)
        if not (isinstance(weight, (int, float)) or callable(weight)):
            raise BadParameterError(f"weight of {item['name']!r} must be a number or callable")
        out.append(
            {"name": item["name"], "weight": weight, "params": dict(item.get("params") or {})}
        )
    return out


class _CallableModule(types.ModuleType):
    """Importing ``xent_core.stack`` rebinds that package attribute to this module; keep
    ``xent_core.stack(spec)`` working by making the module itself callable."""

    def __call__(self, spec: str | Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> LossStack:
        from .api import stack

        return stack(spec)


sys.modules[__name__].__class__ = _CallableModule
