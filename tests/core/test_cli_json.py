"""``--json`` outputs are strict RFC 8259 JSON, on success and on error; bad flags exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xent_core.cli import main
from xent_core.jsonout import dumps, error_object, one_line
from xent_core.testing import isolated_registry


def strict_loads(text: str):
    """json.loads that refuses NaN/Infinity tokens, as RFC 8259 parsers do."""

    def refuse(token: str):
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dumps_writes_non_finite_numbers_as_null():
    value = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float64("nan"), "d": (1,)}
    assert strict_loads(dumps(value)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": [1]}
    assert strict_loads(dumps(np.array([1.0, np.inf]))) == [1.0, None]
    assert json.loads(dumps(object()))  # unknown objects become their str


def test_error_object_is_one_line():
    obj = error_object(ValueError("first\n\n  second"), 2)
    assert obj == {"error": {"type": "ValueError", "message": "first second", "exit_code": 2}}
    assert len(one_line("x" * 1000)) == 500


@pytest.fixture
def toy():
    with isolated_registry(("toy", "toy_plugin")) as reg:
        yield reg


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "no-such-thing", "--json"], "unknown component"),
        (["list", "not-a-kind", "--json"], "unknown kind"),
        (["list", "--plugin", "nope", "--json"], "unknown plugin 'nope'"),
        (["list", "--json", "--no-such-flag"], "No such option"),
    ],
)
def test_json_errors_print_an_error_object_on_stdout(toy, capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
    obj = strict_loads(out)["error"]
    assert obj["exit_code"] == 2 and needle in obj["message"] and obj["type"]


def test_errors_without_json_leave_stdout_empty(toy, capsys):
    code, out, err = run(capsys, "list", "--plugin", "nope")
    assert code == 2 and out == ""
    assert "unknown plugin 'nope'; plugins found: toy" in err


def test_list_plugin_that_did_not_load_is_an_error(capsys):
    with isolated_registry(("toy", "toy_plugin"), ("broken_hook", "broken_hook_plugin")):
        code, _, err = run(capsys, "list", "--plugin", "broken_hook")
        assert code == 2 and "is failed" in err and "boom in hook" in err
        code, out, _ = run(capsys, "list", "--plugin", "toy", "--json")
        assert code == 0 and {r["plugin"] for r in strict_loads(out)} == {"toy"}


def test_estimate_json_has_no_nan_tokens(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
    with isolated_registry(("estimators", "xent_estimators"), ("nan", "nan_estimator_plugin")):
        code, out, _ = run(
            capsys, "estimate", str(tmp_path / "x.npy"), "-e", "nan-estimator", "--json"
        )
    assert code == 0
    result = strict_loads(out)["results"][0]
    assert result["value"] is None
    assert result["details"] == {"upper": None, "lower": None, "pair": [1.0, None]}
