"""The transformers/TRL examples of docs/integrations.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("trl")

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def blocks():
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in found if "import transformers as xhf" in b]


@pytest.mark.parametrize("index", range(3))
def test_doc_example_runs(index, tmp_path, monkeypatch):
    code = blocks()
    assert len(code) >= 3, "docs/integrations.md lost its transformers/TRL examples"
    monkeypatch.chdir(tmp_path)
    exec(compile(code[index], f"docs/integrations.md[{index}]", "exec"), {"__name__": "__doc__"})
