"""The integrations layer is optional: importing xent imports none of the training libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xent_core import NotAvailableError

HEAVY = ("transformers", "trl", "lightning", "torchmetrics", "pytorch_lightning")


def test_importing_xent_imports_no_training_library():
    code = (
        "import json, sys, xent_core, xent_core.integrations, xent_integrations\n"
        "xent_core.list_components()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_missing_library_names_the_extra(monkeypatch):
    import importlib.util

    from xent_integrations import _deps

    real = importlib.util.find_spec
    monkeypatch.setattr(
        _deps.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torchmetrics" else real(name, *a),
    )
    _deps.require("torch")
    with pytest.raises(NotAvailableError, match=r"xent\[lightning\]"):
        _deps.require("torch", "torchmetrics")
