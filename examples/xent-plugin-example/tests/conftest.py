"""Make the example importable from a source checkout (CI also pip-installs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _source_checkout_wins():
    """Test this checkout, not an installed copy another test may have imported first."""
    mod = sys.modules.get("xent_plugin_example")
    if mod is not None and not str(getattr(mod, "__file__", "")).startswith(ROOT):
        for name in [n for n in sys.modules if n.split(".")[0] == "xent_plugin_example"]:
            del sys.modules[name]
    if sys.path[0] != ROOT:
        sys.path.insert(0, ROOT)
    yield
