"""Valid inputs and parameters for any registered component, built from its spec alone.

The sweep tests take every component the registry holds and derive what to feed it from the
input names of the guide (``logits``, ``targets``, ``hidden``, ``classifier``, ...) and from its
parameter names, so a new component is covered the day it is registered. A component whose
inputs these cannot drive (soft targets, (B, T) log-probabilities, probabilities summing to 1)
declares valid ones itself with an ``example_inputs`` static method, read through
``xent_core.testing.example_inputs``: those win over the generic ones here. A new input or
required-parameter name of a component without examples fails loudly here until it is added
below.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import torch

from xent_core import ComponentSpec
from xent_core.registry import Registry
from xent_core.testing import example_inputs

N, C, D, DT, F = 9, 7, 5, 6, 3  # odd sizes: items, classes, hidden, teacher hidden, features
NUM_SAMPLES = 4

#: how to make each input name, from a seeded generator
INPUTS: dict[str, Callable[[torch.Generator], torch.Tensor]] = {
    "logits": lambda g: torch.randn(N, C, generator=g) * 2,
    "targets": lambda g: torch.randint(0, C, (N,), generator=g),
    "hidden": lambda g: torch.randn(N, D, generator=g),
    "classifier": lambda g: torch.randn(C, D, generator=g) * 0.5,
    "bias": lambda g: torch.randn(C, generator=g) * 0.1,
    "teacher_logits": lambda g: torch.randn(N, C, generator=g) * 2,
    "teacher_hidden": lambda g: torch.randn(N, DT, generator=g),
    "teacher_classifier": lambda g: torch.randn(C, DT, generator=g) * 0.5,
    "teacher_bias": lambda g: torch.randn(C, generator=g) * 0.1,
    "values": lambda g: torch.rand(N, generator=g) * 3 - 1.5,
    "features": lambda g: torch.randn(N, F, generator=g),
    "sample_ids": lambda g: torch.randint(0, NUM_SAMPLES, (N,), generator=g),
    "base_logits": lambda g: torch.randn(N, C, generator=g) * 2,
    "teacher_probs": lambda g: torch.softmax(torch.randn(N, C, generator=g), -1),
    "logprobs": lambda g: -torch.rand(N, generator=g) * 3,
    "old_logprobs": lambda g: -torch.rand(N, generator=g) * 3,
    "ref_logprobs": lambda g: -torch.rand(N, generator=g) * 3,
    "advantages": lambda g: torch.randn(N, generator=g),
    "labels": lambda g: torch.randint(0, 2, (N,), generator=g),
    "view_a": lambda g: torch.randn(N, D, generator=g),
    "view_b": lambda g: torch.randn(N, D, generator=g),
    "embeddings": lambda g: torch.randn(N + 1, D, generator=g),  # even rows: 2 views per sample
    "predictions": lambda g: torch.randn(N, generator=g),
    "protected": lambda g: torch.randn(N, F, generator=g),
}

#: optional inputs the sweep passes too (a student-teacher loss needs its teacher)
OPTIONAL_USED = ("teacher_logits", "targets")

#: values of required parameters, by name
REQUIRED_PARAMS: dict[str, Any] = {
    "num_samples": NUM_SAMPLES,
    "vmin": -2.0,
    "vmax": 2.0,
    "num_bins": C,  # bins are the logits' classes
    "ref_counts": torch.arange(13) * 7 % 5,  # dc-pdd's token-frequency table (V = 13, zeros in it)
    "threshold": 1.0,  # entropy-switch: rolling-mean entropy cut
    "size_ratio": 0.25,  # entropy-switch: P_small / P_large
}


class Junk:
    """An object of no expected type (with a stable repr, for test ids)."""

    def __repr__(self) -> str:
        return "Junk()"


def first_party() -> Registry:
    """The first-party registry (third-party plugins installed here are not swept)."""
    return Registry(env={"XENT_LOAD_PLUGINS": ""})


def loss_inputs(spec: ComponentSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid inputs of a loss, by name, checked to give a finite loss.

    The loss's own ``example_inputs`` when it declares them; otherwise the required inputs plus
    :data:`OPTIONAL_USED`, and if the loss refuses those (it needs one of its optional inputs,
    e.g. ``emo`` a ``classifier``), every optional input the sweep can make.
    """
    import xent_core

    own = example_inputs(spec, seed)
    if own is not None:
        out = xent_core.loss(spec.qualified_id, **required_params(spec))(**own)
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert torch.isfinite(out).all(), f"{spec.qualified_id}: non-finite loss on its examples"
        return own
    unknown = [n for n in spec.inputs if n not in INPUTS]
    assert not unknown, f"{spec.qualified_id}: add input(s) {unknown} to sweep_inputs.INPUTS"
    loss = xent_core.loss(spec.qualified_id, **required_params(spec))
    tries = [
        [*spec.inputs, *(n for n in spec.optional_inputs if n in OPTIONAL_USED)],
        [*spec.inputs, *(n for n in spec.optional_inputs if n in INPUTS)],
    ]
    error: Exception | None = None
    for names in tries:
        g = torch.Generator().manual_seed(seed)
        inputs = {n: INPUTS[n](g) for n in names}
        try:
            out = loss(**inputs)
        except xent_core.XentError as exc:
            error = exc
            continue
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert torch.isfinite(out).all(), f"{spec.qualified_id}: non-finite loss on valid inputs"
        return inputs
    raise AssertionError(f"{spec.qualified_id}: no valid inputs found by the sweep: {error}")


def required_params(spec: ComponentSpec) -> dict[str, Any]:
    """Values for the parameters a component cannot be built without."""
    missing = [p.name for p in spec.params if p.required and p.name not in REQUIRED_PARAMS]
    assert not missing, f"{spec.qualified_id}: add {missing} to sweep_inputs.REQUIRED_PARAMS"
    return {p.name: REQUIRED_PARAMS[p.name] for p in spec.params if p.required}


def wrong_values(spec: ComponentSpec) -> list[tuple[str, Any]]:
    """``(parameter, wrongly typed value)`` pairs read from each parameter's default.

    A number gets a string and a list (and ``None`` unless ``None`` is allowed), a flag gets the
    truthy string ``"no"``, a string gets a number; parameters typed ``Any`` are skipped.
    """
    out: list[tuple[str, Any]] = []
    for p in spec.params:
        if p.annotation.strip() in ("Any", "typing.Any", "object"):
            continue
        if p.required:
            default: Any = REQUIRED_PARAMS.get(p.name)
        else:
            try:
                default = ast.literal_eval(p.default)
            except (ValueError, SyntaxError):
                continue  # math.e and other expressions: judged by annotation below
        allows_none = "None" in p.annotation or default is None
        if isinstance(default, bool):
            out += [(p.name, "no")]
        elif isinstance(default, (int, float)):
            takes_list = any(t in p.annotation for t in ("list", "Sequence", "tuple"))
            out += [(p.name, "x")] if takes_list else [(p.name, "x"), (p.name, [1])]
            if not allows_none:
                out.append((p.name, None))
        elif isinstance(default, str):
            numeric = any(t in p.annotation for t in ("float", "int"))
            out.append((p.name, [1] if numeric else 42))
        elif default is None:
            out.append((p.name, Junk()))
    return out
