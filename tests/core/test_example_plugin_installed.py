"""The example third-party plugin, installed with pip (as CI does), shows up and can be hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

try:
    metadata.distribution("xent-plugin-example")
    INSTALLED = True
except metadata.PackageNotFoundError:
    INSTALLED = False

pytestmark = pytest.mark.skipif(
    not INSTALLED, reason="xent-plugin-example is not pip-installed (CI installs it: see .ci/run)"
)


def xent_json(*args: str, **env: str):
    full = {k: v for k, v in os.environ.items() if not k.startswith("XENT_")}
    full.update(env)
    code = "import sys; from xent_core.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run(
        [sys.executable, "-c", code, *args, "--json"],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_installed_example_is_listed():
    ids = {r["id"] for r in xent_json("list")}
    assert {"example:brier", "example:collision-entropy"} <= ids
    plugin = {p["name"]: p for p in xent_json("plugins")}["example"]
    assert plugin["status"] == "loaded" and plugin["distribution"] == "xent-plugin-example"


def test_empty_allow_list_hides_it():
    ids = {r["id"] for r in xent_json("list", XENT_LOAD_PLUGINS="")}
    assert not any(i.startswith("example:") for i in ids)
    first_party = ("cce:", "losses:", "fitters:", "estimators:", "distill:")
    assert {i.split(":")[0] + ":" for i in ids if i.startswith(first_party)} == set(first_party)
