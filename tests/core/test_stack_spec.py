"""Stack specs and weights: every malformed spec or weight is a clear BadParameterError."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import xent_core
from xent_core import BadParameterError, XentError
from xent_core.stack_spec import check_weight, normalize_stack_spec, parse_stack_spec
from xent_core.testing import isolated_registry


@pytest.fixture(autouse=True)
def toy_registry():
    with isolated_registry("toy_plugin") as reg:
        yield reg


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("1.2.3*toy-ce", "cannot parse loss term '1.2.3\\*toy-ce'"),
        ("toy-ce*1..5", "cannot parse"),
        ("nan*toy-ce", "cannot parse"),
        ("1e999*toy-ce", "finite"),
        (42, "got int"),
        (None, "got NoneType"),
        (b"toy-ce", "got bytes"),
        ([{"name": 42}], "non-empty string, got 42"),
        ([{"name": ""}], "non-empty string"),
        ([{"name": "toy-ce", "params": [1]}], "dict of keyword arguments"),
        ([{"name": "toy-ce", "weight": math.nan}], "finite"),
        ([{"name": "toy-ce", "weight": math.inf}], "finite"),
        ([{"name": "toy-ce", "weight": "2"}], "must be a number"),
        ([{"name": "toy-ce", "weight": True}], "must be a number"),
    ],
)
def test_bad_stack_specs_raise_a_clear_error(spec, needle):
    with pytest.raises(BadParameterError, match=needle):
        xent_core.stack(spec)


@pytest.mark.parametrize("weight", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_by_every_route(weight):
    loss = xent_core.loss("toy-ce")
    with pytest.raises(BadParameterError, match="finite"):
        weight * loss
    with pytest.raises(BadParameterError, match="finite"):
        xent_core.LossStack().add(loss, weight)
    with pytest.raises(BadParameterError, match="finite"):
        (loss + xent_core.loss("toy-square")) * weight


def test_valid_weights_and_schedules_are_kept():
    assert check_weight(2) == 2.0 and isinstance(check_weight(2), float)
    schedule = lambda step: 0.1 * step  # noqa: E731
    assert check_weight(schedule) is schedule
    assert parse_stack_spec(".5*a + b*2. + 1e-3*c")[0]["weight"] == 0.5
    assert [t["weight"] for t in parse_stack_spec(".5*a + b*2. + 1e-3*c")] == [0.5, 2.0, 0.001]
    assert normalize_stack_spec({"terms": [{"name": "a"}]}) == [
        {"name": "a", "weight": 1.0, "params": {}}
    ]


def test_spec_errors_are_xent_errors_without_torch():
    code = (
        "import sys\n"
        "from xent_core import XentError\n"
        "from xent_core.stack_spec import normalize_stack_spec\n"
        "for bad in ('1.2.3*ce', 42, [{'name': 42}], [{'name': 'ce', 'weight': float('nan')}]):\n"
        "    try:\n"
        "        normalize_stack_spec(bad)\n"
        "    except XentError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'accepted {bad!r}')\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert issubclass(BadParameterError, XentError)
