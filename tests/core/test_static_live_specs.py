"""For every first-party component the static spec (read from source) equals the live one."""

from __future__ import annotations

import ast
import sys

import pytest

import xent_core
from xent_core.components import build_spec
from xent_core.registry import FIRST_PARTY_DISTRIBUTION

SPECS = [s for s in xent_core.list_components() if s.distribution == FIRST_PARTY_DISTRIBUTION]


def _value(text: str, namespace: dict[str, object]) -> object:
    """What a default's source text evaluates to in the component's module."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return eval(text, dict(namespace))  # the text is a default expression of our own source


@pytest.mark.parametrize("spec", SPECS, ids=[s.qualified_id for s in SPECS])
def test_static_spec_equals_live_spec(spec):
    obj = spec.load()
    live = build_spec(target=obj, name=spec.name, kind=spec.kind, plugin=spec.plugin)
    namespace = vars(sys.modules[obj.__module__])
    pairs = list(zip(spec.params, live.params, strict=False))
    assert [(s.name, s.required) for s, _ in pairs] == [(v.name, v.required) for _, v in pairs]
    assert len(spec.params) == len(live.params)
    for s, v in pairs:
        same = s.default == v.default or _value(s.default, namespace) == _value(v.default, {})
        assert same, (s.name, s.default, v.default)
        assert s.description == v.description, s.name
    assert spec.accepts_extra_params == live.accepts_extra_params
    assert (spec.inputs, spec.optional_inputs) == (live.inputs, live.optional_inputs)
    assert spec.citations == live.citations
    assert dict(spec.capabilities) == dict(live.capabilities)


@pytest.mark.parametrize("spec", SPECS, ids=[s.qualified_id for s in SPECS])
def test_every_parameter_has_a_description(spec):
    missing = [p.name for p in spec.params if not p.description]
    assert not missing, f"{spec.qualified_id}: no Args: entry for {missing}"
