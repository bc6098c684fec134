"""The loss a patched model computes: linear-loss terms fed ``hidden``/``classifier``/``targets``.

A spec string (``"linear-cross-entropy(z_loss=1e-4) + 0.1*other"``) is built with the model's head
transform injected into every term (``softcap``, ``logit_scale``); a module is used as given and
must agree with the model's head transform. ``num_items`` is passed to terms that take it; a
``mean`` term that does not is rescaled by ``count / num_items``, which is the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

import xent_core
from xent_core import BadInputError, BadParameterError
from xent_core.base_loss import call_loss, loss_inputs
from xent_core.stack import LossStack, normalize_stack_spec

from .heads import HeadTransform

DRIVEN = ("hidden", "classifier", "targets")
OPTIONAL = ("bias", "num_items")


@dataclass
class Term:
    """One loss term: the module, its weight, and how the head transform reaches it."""

    name: str
    module: torch.nn.Module
    weight: float
    optional: tuple[str, ...]
    fold_scale: bool  # multiply hidden (and bias) by the logit scale before calling


def _param_names(name: str) -> set[str]:
    return {p.name for p in xent_core.info(name, "loss").params}


def _check_driveable(name: str, module: torch.nn.Module) -> tuple[str, ...]:
    required, optional = loss_inputs(module)
    extra = [r for r in required if r not in DRIVEN]
    if extra or "hidden" not in required or "classifier" not in required:
        raise BadParameterError(
            f"loss term {name!r} needs inputs {', '.join(required)}; a patched causal LM provides "
            f"{', '.join(DRIVEN)} (+ {', '.join(OPTIONAL)}): use a linear loss such as "
            "'linear-cross-entropy' (distillation losses go through the GKD mixin)"
        )
    if getattr(module, "shift", False):
        raise BadParameterError(
            f"loss term {name!r} has shift=True; the patch shifts labels as transformers does, "
            "so build the loss with shift=False"
        )
    if getattr(module, "reduction", "mean") != "mean":
        raise BadParameterError(
            f"loss term {name!r} has reduction={module.reduction!r}; a model loss is a mean"
        )
    return tuple(o for o in optional if o in OPTIONAL)


def _from_spec(spec: Any, head: HeadTransform) -> list[Term]:
    terms = []
    for item in normalize_stack_spec(spec):
        name, params = item["name"], dict(item["params"])
        if callable(item["weight"]):
            raise BadParameterError(f"term {name!r}: scheduled weights are not supported here")
        accepted = _param_names(name)
        for key in ("softcap", "logit_scale", "shift"):
            if key in params:
                raise BadParameterError(
                    f"term {name!r}: {key} is set by the patch from the model config "
                    f"({head.describe()}); do not pass it"
                )
        if head.softcap is not None:
            if "softcap" not in accepted:
                raise BadParameterError(
                    f"term {name!r} has no softcap parameter but the model soft-caps its logits "
                    f"({head.describe()})"
                )
            params["softcap"] = head.softcap
        fold = False
        if head.logit_scale != 1.0:
            if "logit_scale" in accepted:
                params["logit_scale"] = head.logit_scale
            else:
                fold = True
        module = xent_core.loss(name, **params)
        optional = _check_driveable(name, module)
        terms.append(Term(name, module, float(item["weight"]), optional, fold))
    return terms


def _from_module(module: torch.nn.Module, head: HeadTransform) -> list[Term]:
    if isinstance(module, LossStack):
        pairs = [(n, m, module.weight_at(i)) for i, (n, m) in enumerate(
            zip(module.term_names, module.terms))]  # fmt: skip
    else:
        pairs = [(type(module).__name__, module, 1.0)]
    terms = []
    for name, m, w in pairs:
        optional = _check_driveable(name, m)
        softcap = getattr(m, "softcap", None)
        if (softcap is None) != (head.softcap is None) or (
            softcap is not None and not math.isclose(softcap, head.softcap or 0.0)
        ):
            raise BadParameterError(
                f"loss term {name!r} has softcap={softcap!r} but the model config says "
                f"{head.describe()}; pass a spec string and the patch sets it"
            )
        scale = float(getattr(m, "logit_scale", 1.0))
        if scale != 1.0 and not math.isclose(scale, head.logit_scale):
            raise BadParameterError(
                f"loss term {name!r} has logit_scale={scale!r} but the model config says "
                f"{head.describe()}"
            )
        fold = scale == 1.0 and head.logit_scale != 1.0
        terms.append(Term(name, m, float(w), optional, fold))
    return terms


def resolve_terms(loss: Any, head: HeadTransform) -> list[Term]:
    """The terms of ``loss`` (spec string, term dicts, or a loss module) for a model's head."""
    if isinstance(loss, torch.nn.Module):
        return _from_module(loss, head)
    if isinstance(loss, (str, Mapping, list, tuple)):
        return _from_spec(loss, head)
    raise BadParameterError(
        f"loss must be a loss spec string or a loss module, got {type(loss).__name__}"
    )


def compute(
    terms: list[Term],
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    num_items: Any,
    scale: float,
    ignore_index: int = -100,
) -> torch.Tensor:
    """The weighted sum of the terms on flat ``hidden`` (N, D) and ``targets`` (N,)."""
    total: torch.Tensor | None = None
    count = None
    for term in terms:
        h, b = hidden, bias
        if term.fold_scale:
            h = hidden * scale
            b = None if bias is None else bias * scale
        inputs: dict[str, Any] = {"hidden": h, "classifier": classifier, "targets": targets}
        if b is not None:
            if "bias" not in term.optional:
                raise BadInputError(f"the output head has a bias but term {term.name!r} takes none")
            inputs["bias"] = b
        factor = None
        if num_items is not None:
            if "num_items" in term.optional:
                inputs["num_items"] = num_items
            else:
                if count is None:
                    count = (targets != ignore_index).sum()
                factor = count / torch.as_tensor(num_items, device=count.device)
        out = call_loss(term.module, inputs)
        value = out[0] if isinstance(out, (tuple, list)) else out
        if factor is not None:
            value = value * factor.to(value.dtype)
        value = value * term.weight
        total = value if total is None else total + value
    assert total is not None
    return total
