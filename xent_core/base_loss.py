"""Losses: the ``Loss`` base class and ``LossStack``, a weighted sum of losses.

A :class:`Loss` is a ``torch.nn.Module`` that composes with ``+`` and ``*``: the result is a
:class:`LossStack`. ``forward``'s parameter names are the loss's input names (``logits``,
``targets``, ``hidden``, ``classifier``, ...), unless the class declares ``inputs`` /
``optional_inputs`` explicitly; a stack routes its keyword inputs to each term by these names.
Build a stack with operators (``xent_core.loss("cross-entropy") + 0.5 * xent_core.loss("kd")``)
or from a spec (``xent_core.stack("cross-entropy + 0.5*kd(temperature=2)")``, parsed by
:mod:`xent_core.stack_spec`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from . import checks, validate
from .errors import BadInputError, BadParameterError
from .naming import kebab_from_identifier
from .stack_spec import Weight, check_weight

__all__ = ["Loss", "LossStack", "Weight", "call_loss", "declared_inputs", "loss_inputs"]

checks._is_compiling = torch.compiler.is_compiling  # the input-check switch under torch.compile


class Loss(torch.nn.Module):
    """A loss module that can be weighted (``0.5 * loss``) and summed (``a + b``) into a stack."""

    def __add__(self, other: Any) -> LossStack:
        total: LossStack = LossStack.of(self) + other
        return total

    def __radd__(self, other: Any) -> LossStack:
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return LossStack.of(self)
        return NotImplemented

    def __mul__(self, weight: Weight) -> LossStack:
        if not (isinstance(weight, (int, float)) or callable(weight)):
            return NotImplemented
        return LossStack([(self, weight)])

    __rmul__ = __mul__


def declared_inputs(module: torch.nn.Module) -> tuple[str, ...] | None:
    """Input names the class declares with an ``inputs`` attribute (``None`` if it does not)."""
    declared = getattr(type(module), "inputs", None)
    if isinstance(declared, (tuple, list)) and all(isinstance(x, str) for x in declared):
        return tuple(declared)
    return None


def loss_inputs(module: torch.nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(required, optional)`` input names of a loss module."""
    declared = declared_inputs(module)
    if declared is not None:
        return declared, tuple(getattr(module, "optional_inputs", ()) or ())
    spec = getattr(module, "xent_spec", None)
    if spec is not None and (spec.inputs or spec.optional_inputs):
        return tuple(spec.inputs), tuple(spec.optional_inputs)
    required: list[str] = []
    optional: list[str] = []
    for p in inspect.signature(module.forward).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        (required if p.default is p.empty else optional).append(p.name)
    return tuple(required), tuple(optional)


def call_loss(module: torch.nn.Module, inputs: dict[str, Any]) -> Any:
    """Call ``module`` with the inputs it consumes from ``inputs`` (all required ones present).

    Declared ``inputs`` are passed positionally in their declared order (the class chose names
    that differ from its ``forward`` parameters); otherwise every input goes by keyword.
    """
    required, optional = loss_inputs(module)
    extra = {k: inputs[k] for k in optional if k in inputs}
    if declared_inputs(module) is not None:
        return module(*(inputs[k] for k in required), **extra)
    return module(**{k: inputs[k] for k in required}, **extra)


def _scaled(weight: Weight, factor: float) -> Weight:
    if factor == 1:
        return weight
    if callable(weight):
        schedule = weight

        def scaled(step: int) -> float:
            return factor * schedule(step)

        return scaled
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
        base = name or _term_name(module)
        checked = check_weight(weight, repr(base))
        unique, k = base, 2
        while unique in self.term_names:
            unique, k = f"{base}#{k}", k + 1
        self.terms.append(module)
        self.weights.append(checked)
        self.term_names.append(unique)
        return self

    def _copy_terms(self) -> list[tuple[torch.nn.Module, Weight, str | None]]:
        return list(zip(self.terms, self.weights, self.term_names))

    def __add__(self, other: Any) -> LossStack:
        extra: list[tuple[torch.nn.Module, Weight, str | None]]
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
        scale = validate.number("a stack's factor", factor)
        out = LossStack()
        for m, w, n in self._copy_terms():
            out.add(m, _scaled(w, scale), n)
        return out

    __rmul__ = __mul__

    def weight_at(self, index: int, step: int | None = None) -> float:
        """The weight of term ``index`` at ``step`` (default: the current step)."""
        w = self.weights[index]
        return float(w(self.step if step is None else step)) if callable(w) else float(w)

    def inputs(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Each term's ``(required, optional)`` inputs."""
        return {n: loss_inputs(m) for n, m in zip(self.term_names, self.terms)}

    def forward(self, **inputs: Any) -> torch.Tensor:
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
