"""CLI: list/info/plugins with and without --json, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xent_core import __version__
from xent_core.cli import main
from xent_core.testing import isolated_registry


@pytest.fixture(autouse=True)
def toy_registry():
    with isolated_registry(("toy", "toy_plugin"), ("broken_hook", "broken_hook_plugin")) as reg:
        yield reg


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"xent {__version__}"


def test_list_table_and_json(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "toy-ce" in out and "Toy cross-entropy." in out
    code, out, _ = run(capsys, "list", "kernel", "--json")
    rows = json.loads(out)
    assert code == 0
    assert rows == [
        {
            "name": "toy-kernel",
            "kind": "kernel",
            "id": "toy:toy-kernel",
            "plugin": "toy",
            "summary": "A kernel that needs a package that does not exist.",
            "available": False,
        }
    ]
    code, out, _ = run(capsys, "list", "loss", "--plugin", "toy", "--json")
    assert [r["name"] for r in json.loads(out)] == ["toy-ce", "toy-distance", "toy-square"]


def test_list_kernel_shows_availability(capsys):
    code, out, _ = run(capsys, "list", "kernel")
    assert code == 0 and "needs" in out and "no_such_pkg_xyz" in out


def test_info_text_and_json(capsys):
    code, out, _ = run(capsys, "info", "toy_ce")
    assert code == 0
    for needle in ("toy:toy-ce", "scale=1.0", "logits, targets", "A toy paper", "arXiv:0000.00001"):
        assert needle in out
    code, out, _ = run(capsys, "info", "toy-ce", "--json")
    data = json.loads(out)
    assert data["citations"] == [{"title": "A toy paper", "arxiv": "arXiv:0000.00001"}]
    assert data["inputs"] == ["logits", "targets"]


def test_plugins_reports_failures(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    status = {p["name"]: p for p in json.loads(out)}
    assert status["toy"]["status"] == "loaded"
    assert status["toy"]["components"] == {"loss": 3, "estimator": 1, "kernel": 1}
    assert status["broken_hook"]["status"] == "failed"
    assert "boom in hook" in status["broken_hook"]["error"]
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "failed" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "toy-cee"], "did you mean 'toy-ce'"),
        (["list", "bogus"], "unknown kind"),
        (["frobnicate"], "No such command"),
        (["list", "--bogus"], "No such option"),
        (["info"], "Missing argument"),
    ],
)
def test_bad_usage_is_one_line_exit_2(capsys, args, needle):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_debug_shows_traceback(capsys):
    with pytest.raises(Exception, match="toy-cee"):
        main(["--debug", "info", "toy-cee"])


def test_console_script_starts_without_torch():
    code = (
        "import sys; from xent_core.cli import main; rc = main(['list']); "
        "sys.exit(3 if 'torch' in sys.modules or 'triton' in sys.modules else rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_plugin_subcommand(capsys):
    code, out, _ = run(capsys, "toy-hello", "--name", "xent")
    assert code == 0 and out.strip() == "hello xent"
    code, out, _ = run(capsys, "--help")
    assert "toy-hello" in out


def test_plugin_commands_do_not_leak_between_registries(capsys):
    with isolated_registry(("other", "other_plugin")):
        code, _, err = run(capsys, "toy-hello")
    assert code == 2 and "No such command" in err
