"""The CLI swept: every command with a bad flag, every component through ``info --json``.

Bad usage exits 2 with one stderr line (and a JSON error object under ``--json``); every
listing is strict JSON. Bad data files are swept in tests/plugins/estimators/test_est_cli_files.py.
"""

from __future__ import annotations

import json

import pytest
from sweep_inputs import first_party

import xent_core
from xent_core.cli import build_app, main

REGISTRY = first_party()


def strict(text: str):
    def refuse(token: str):
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module", autouse=True)
def registry():
    previous = xent_core.set_registry(REGISTRY)
    yield REGISTRY
    xent_core.set_registry(previous)


def _commands() -> list[str]:
    previous = xent_core.set_registry(REGISTRY)
    try:
        app = build_app()
    finally:
        xent_core.set_registry(previous)
    names = [c.name for c in app.registered_commands if c.name]
    names += [g.name for g in app.registered_groups if g.name]
    return sorted(names)


@pytest.mark.parametrize("command", _commands())
def test_every_command_rejects_an_unknown_flag_in_one_line(capsys, command):
    code = main([command, "--no-such-flag-xyz"])
    out, err = capsys.readouterr()
    assert code == 2, (command, out, err)
    assert len(err.strip().splitlines()) == 1 and "no-such-flag-xyz" in err
    assert "Traceback" not in out + err
    code = main([command, "--no-such-flag-xyz", "--json"])
    out, _ = capsys.readouterr()
    assert code == 2 and strict(out)["error"]["exit_code"] == 2


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


@pytest.mark.parametrize("qid", [s.qualified_id for s in REGISTRY.specs()])
def test_every_component_info_is_strict_json(capsys, qid):
    assert main(["info", qid, "--json"]) == 0
    assert strict(capsys.readouterr().out)["id"] == qid


@pytest.mark.parametrize(
    "args",
    [["info"], ["list", "kernel", "extra"], ["info", "x", "--plugin"], ["nope-command"]],
)
def test_bad_usage_exits_2(capsys, args):
    assert main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_listings_are_strict_json(capsys):
    for args in (["list", "--json"], ["plugins", "--json"]):
        assert main(args) == 0
        assert strict(capsys.readouterr().out)
