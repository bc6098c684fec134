"""Plugin isolation: a plugin that exits, raises BaseException, prints, or registers malformed
metadata is reported as failed and never takes the host (or ``--json`` output) down with it."""

from __future__ import annotations

import json
import threading

import pytest

import xent_core
from xent_core import registry as registry_module
from xent_core.cli import main
from xent_core.registry import PluginSource, Registry
from xent_core.testing import isolated_registry


def make(*names: str) -> Registry:
    return Registry([PluginSource(n.replace("_plugin", ""), n) for n in names], env={})


@pytest.mark.parametrize(
    ("module", "needle"),
    [
        ("exit_hook_plugin", "SystemExit"),
        ("base_exception_plugin", "Escape: escaped the hook"),
    ],
)
def test_hook_that_exits_or_raises_base_exception_is_isolated(module, needle):
    reg = make("toy_plugin", module)
    status = {p.name: p for p in reg.plugins()}
    broken = status[module.replace("_plugin", "")]
    assert broken.status == "failed" and needle in broken.error
    assert status["toy"].status == "loaded"
    assert {s.plugin for s in reg.specs()} == {"toy"}


def test_command_hook_that_exits_is_reported_and_commands_still_work(capsys):
    with isolated_registry(("toy", "toy_plugin"), ("exit_commands", "exit_commands_plugin")):
        code = main(["plugins", "--json"])
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert code == 0
        assert rows["exit_commands"]["status"] == "failed"
        assert "SystemExit" in rows["exit_commands"]["error"]
        assert main(["toy-hello", "--name", "x"]) == 0
        assert capsys.readouterr().out.strip() == "hello x"


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("requires-int", "capabilities['requires'] must be a list of module names"),
        ("devices-str", "capabilities['devices'] must be a list of device names"),
        ("not-a-dict", "capabilities must be a dict"),
        ("differentiable-str", "capabilities['differentiable'] must be True or False"),
    ],
)
def test_malformed_capabilities_fail_the_plugin_not_the_listing(monkeypatch, capsys, case, needle):
    monkeypatch.setenv("XENT_TEST_BAD_CAPS", case)
    with isolated_registry(("toy", "toy_plugin"), ("bad_caps", "bad_caps_plugin")) as reg:
        info = {p.name: p for p in reg.plugins()}["bad_caps"]
        assert info.status == "failed" and needle in info.error
        for args in (["list"], ["list", "--json"], ["info", "toy-ce", "--json"], ["plugins"]):
            assert main(args) == 0, args
        capsys.readouterr()


def test_malformed_capabilities_class_attribute_is_refused():
    reg = make("toy_plugin", "bad_caps_attr_plugin")
    info = {p.name: p for p in reg.plugins()}["bad_caps_attr"]
    assert info.status == "failed"
    assert "capabilities['devices'] must be a list" in info.error


def test_well_formed_capabilities_are_accepted():
    registry_module.check_capabilities(
        "p:x", {"requires": ("torch",), "devices": ["cpu", "cuda"], "differentiable": True}
    )
    registry_module.check_capabilities("p:x", {"free_form": object()})


@pytest.mark.parametrize(
    "args",
    [["list", "--json"], ["info", "printed-square", "--json"], ["plugins", "--json"]],
)
def test_plugin_printing_to_stdout_does_not_corrupt_json(capsys, args):
    import sys

    sys.modules.pop("print_plugin", None)  # print again at import
    with isolated_registry(("toy", "toy_plugin"), ("print", "print_plugin")):
        code = main(args)
    out, err = capsys.readouterr()
    assert code == 0
    json.loads(out)  # nothing but JSON on stdout
    assert "print_plugin: registering losses" in err  # the plugin's words are kept, on stderr


def test_concurrent_first_get_registry_builds_one_registry(monkeypatch):
    import counting_plugin

    counting_plugin.CALLS.clear()
    monkeypatch.setattr(
        registry_module,
        "discover_entry_points",
        lambda group="xent": [PluginSource("counting", "counting_plugin")],
    )
    previous = xent_core.set_registry(None)
    try:
        seen: list[Registry] = []
        barrier = threading.Barrier(8)

        def first_call() -> None:
            barrier.wait()
            seen.append(xent_core.get_registry())

        threads = [threading.Thread(target=first_call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and len({id(r) for r in seen}) == 1
        assert len(counting_plugin.CALLS) == 1
    finally:
        xent_core.set_registry(previous)
