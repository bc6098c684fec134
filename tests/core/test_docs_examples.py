"""Every Python block of README.md and docs/ runs from a fresh clone.

The blocks of one page run in order in one namespace (later blocks use earlier names), in a
temporary directory (files they write land there). A block preceded by an HTML comment
``<!-- no-run: reason -->`` is skipped: it needs a GPU, several processes, or objects of the
reader's own training loop; the reason is required. Pages run in-process: a few seconds each,
the scaling-law pages longer (they fit real data).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NO_RUN = re.compile(r"<!--\s*no-run:(.*?)-->\s*$")


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, no-run reason or None)`` for each Python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NO_RUN.search(before)
        out.append((line, m.group(1), marker.group(1).strip() if marker else None))
    return out


RUNNABLE = [p for p in PAGES if any(reason is None for _, _, reason in blocks(p))]


def test_pages_have_python_blocks_and_every_no_run_has_a_reason():
    assert len(RUNNABLE) >= 5
    for page in PAGES:
        for line, _, reason in blocks(page):
            assert reason is None or len(reason) > 5, f"{page.name}:{line}: give a no-run reason"
        text = page.read_text(encoding="utf-8")
        outside = "../" + "shared"  # the folder beside a developer's checkout, absent from clones
        assert outside not in text, f"{page.name} reads {outside}: ship the data instead"


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()  # figures a page saves under docs/ land in the temp directory
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code, reason in blocks(page):
        if reason is not None:
            continue
        where = f"{page.relative_to(ROOT)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"the block at {where} fails: {type(exc).__name__}: {exc}")
