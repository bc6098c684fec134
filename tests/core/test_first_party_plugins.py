"""The five first-party plugins: one registration idiom, typed hookimpls, no silent skips."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from xent_core.registry import FIRST_PARTY_DISTRIBUTION, PluginSource, Registry

PLUGINS = ("xent_cce", "xent_losses", "xent_distill", "xent_estimators", "xent_fitters")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", PLUGINS)
def test_hookimpls_are_annotated_and_register_from_a_table(package):
    source = (ROOT / "plugins" / package / "__init__.py").read_text(encoding="utf-8")
    assert "type: ignore" not in source
    tree = ast.parse(source)
    hooks = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("register_")
    ]
    assert hooks
    for fn in hooks:
        (arg,) = fn.args.args
        assert ast.unparse(arg.annotation) in ("Register", "RegisterCommand"), fn.name
    module = importlib.import_module(package)
    tables = [v for k, v in vars(module).items() if k.isupper() and isinstance(v, dict)]
    assert tables and all(all(isinstance(k, str) for k in t) for t in tables)


def test_a_missing_first_party_module_fails_the_plugin_loudly(monkeypatch):
    fitters = importlib.import_module("xent_fitters")
    monkeypatch.setitem(fitters.LAWS, "ghost-law", "xent_fitters.no_such_module:GhostLaw")
    source = PluginSource(
        "fitters", "xent_fitters", distribution=FIRST_PARTY_DISTRIBUTION, loader=lambda: fitters
    )
    reg = Registry([source], env={})
    (info,) = reg.plugins()
    assert info.status == "failed"
    assert "xent_fitters.no_such_module" in (info.error or "")
    assert not reg.specs()
