"""Spec readers: ``Args:`` descriptions, ``**kwargs`` followed to the base, static == live."""

from __future__ import annotations

import json

import described_components as dc
import pytest

from xent_core._docstrings import arg_descriptions
from xent_core.cli import main
from xent_core.components import build_spec
from xent_core.testing import isolated_registry


def test_args_section_is_parsed_one_entry_per_parameter():
    doc = """Summary.

    Some formula: a * b.

    Args:
        alpha: first line
            continued here.
        beta (float): with a type.
        **kwargs: passed on.

    Returns:
        gamma: not a parameter.
    """
    assert arg_descriptions(doc) == {
        "alpha": "first line continued here.",
        "beta": "with a type.",
        "kwargs": "passed on.",
    }
    assert arg_descriptions("No sections here.\n\nalpha: not in a section") == {}


def _spec(target):
    return build_spec(target=target, name="x", kind="scaling_model", plugin="t")


@pytest.mark.parametrize("attr", ["Child", "factory"])
def test_static_and_live_specs_agree(attr):
    static = _spec(f"described_components:{attr}")
    live = _spec(getattr(dc, attr))
    assert static.params == live.params
    assert static.accepts_extra_params == live.accepts_extra_params


def test_kwargs_are_followed_to_the_base_init_with_descriptions():
    spec = _spec("described_components:Child")
    assert [(p.name, p.default, p.required) for p in spec.params] == [
        ("x", "'N'", False),
        ("delta", "0.001", False),
        ("seed", "0", False),
    ]
    assert not spec.accepts_extra_params
    assert [p.description for p in spec.params] == [
        "name of the input column.",
        "Huber threshold on the log residuals; smaller is closer to least squares.",
        "random seed of the starts, e.g. ``seeds[i]``.",
    ]
    assert spec.to_dict()["params"][1]["description"].startswith("Huber threshold")
    assert _spec("described_components:factory").params[0].description == "multiplier."


def test_info_shows_parameter_descriptions(capsys):
    with isolated_registry(("d", "described_components")):
        assert main(["info", "child-law", "--json"]) == 0
        params = json.loads(capsys.readouterr().out)["params"]
        assert params[0]["description"] == "name of the input column."
        assert main(["info", "child-law"]) == 0
        out = capsys.readouterr().out
        assert "random seed of the starts, e.g. ``seeds[i]``." in out
        assert "int | None" in out  # annotations and descriptions are text, not rich markup
