"""docs/components.md is generated from the registry and must not go stale."""

from __future__ import annotations

from pathlib import Path

from xent_core import catalogue
from xent_core.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def test_components_catalogue_is_current():
    expected = catalogue.render(Registry(env={}))
    current = (ROOT / "docs" / "components.md").read_text(encoding="utf-8")
    assert current == expected, "docs/components.md is stale: run `python -m xent_core.catalogue`"


def test_catalogue_lists_every_first_party_component():
    reg = Registry(env={})
    text = catalogue.render(reg)
    for spec in reg.specs():
        if spec.distribution == "xent":
            assert f"`{spec.name}`" in text


def test_plugin_walkthrough_embeds_the_example_verbatim():
    doc = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    example = ROOT / "examples" / "xent-plugin-example"
    for rel in (
        "pyproject.toml",
        "xent_plugin_example/__init__.py",
        "xent_plugin_example/brier.py",
        "xent_plugin_example/collision.py",
        "tests/test_example_plugin.py",
    ):
        text = (example / rel).read_text(encoding="utf-8")
        assert f"# {rel}\n{text}```" in doc, f"docs/writing-a-plugin.md is out of sync with {rel}"


def test_relative_links_in_docs_resolve():
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in link and not (page.parent / link).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {link}")
    assert not broken, broken
