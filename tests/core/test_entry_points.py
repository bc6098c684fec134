"""Third-party discovery for real: a fake ``*.dist-info`` with ``entry_points.txt`` on sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def make_dist(root: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[xent]\n{ep_name} = {module}\n")


GOOD = '''
from xent_core import hookimpl

class Hinge:
    """Multiclass hinge loss (toy)."""
    citation = ("Hinge paper", "arXiv:1111.11111")
    def __init__(self, margin: float = 1.0):
        self.margin = margin
    def forward(self, logits, targets):
        return logits

@hookimpl
def register_losses(register):
    register("fake_good_mod:Hinge", name="fake-hinge")
'''

BROKEN = """
raise ImportError("missing dependency foo")
"""

BROKEN_HOOK = """
from xent_core import hookimpl

@hookimpl
def register_estimators(register):
    raise RuntimeError("bad registration")
"""


@pytest.fixture
def site(tmp_path):
    make_dist(tmp_path, "xent-plugin-fakegood", "fake_good_mod", GOOD, "fakegood")
    make_dist(tmp_path, "xent-plugin-fakebroken", "fake_broken_mod", BROKEN, "fakebroken")
    make_dist(tmp_path, "xent-plugin-fakehook", "fake_hook_mod", BROKEN_HOOK, "fakehook")
    return tmp_path


def xent(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    full_env.pop("XENT_LOAD_PLUGINS", None)
    full_env.update(env)
    code = "import sys; from xent_core.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def test_fake_distribution_is_discovered_with_version(site):
    out = xent(site, "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert rows["fakegood:fake-hinge"]["summary"] == "Multiclass hinge loss (toy)."
    info = json.loads(xent(site, "info", "fake-hinge", "--json").stdout)
    assert info["distribution"] == "xent-plugin-fakegood"
    assert info["version"] == "1.2.3"
    assert info["params"][0]["name"] == "margin"


def test_broken_plugins_are_reported_and_others_still_list(site):
    plugins = {p["name"]: p for p in json.loads(xent(site, "plugins", "--json").stdout)}
    assert plugins["fakegood"]["status"] == "loaded"
    assert plugins["fakebroken"]["status"] == "failed"
    assert "missing dependency foo" in plugins["fakebroken"]["error"]
    assert plugins["fakehook"]["status"] == "failed"
    assert "bad registration" in plugins["fakehook"]["error"]
    first_party = [p for p in plugins.values() if p["distribution"] == "xent"]
    assert first_party and all(p["status"] == "loaded" for p in first_party)


def test_allow_list_hides_third_party(site):
    out = xent(site, "list", "--json", XENT_LOAD_PLUGINS="")
    assert "fakegood:fake-hinge" not in out.stdout
    plugins = {
        p["name"]: p
        for p in json.loads(xent(site, "plugins", "--json", XENT_LOAD_PLUGINS="").stdout)
    }
    assert plugins["fakegood"]["status"] == "blocked"
    out = xent(site, "list", "--json", XENT_LOAD_PLUGINS="xent-plugin-fakegood")
    assert "fakegood:fake-hinge" in out.stdout
    plugins = {
        p["name"]: p
        for p in json.loads(xent(site, "plugins", "--json", XENT_LOAD_PLUGINS="fakegood").stdout)
    }
    assert plugins["fakebroken"]["status"] == "blocked"


def test_deny_list(site):
    out = xent(site, "list", "--json", XENT_DISABLE_PLUGINS="fakegood")
    assert "fake-hinge" not in out.stdout
