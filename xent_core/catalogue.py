"""Render ``docs/components.md`` from the registry.

``python -m xent_core.catalogue`` rewrites the file; ``--check`` exits 1 when it is stale. Only
first-party components (distribution ``xent``) are listed, so locally installed third-party
plugins never make the committed file look stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .components import ComponentSpec, Param
from .naming import KINDS
from .registry import FIRST_PARTY_DISTRIBUTION, Registry, get_registry

DEFAULT_PATH = Path("docs/components.md")
_TITLES = {
    "loss": "Losses",
    "estimator": "Estimators",
    "kernel": "Kernels",
    "scaling_model": "Scaling models",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _params(spec: ComponentSpec) -> str:
    return ", ".join(p.name if p.required else f"{p.name}={p.default}" for p in spec.params)


def _param_line(p: Param) -> str:
    head = f"`{p.name}`" if p.required else f"`{p.name}={p.default}`"
    return f"{head}: {p.description}" if p.description else head


def render(registry: Registry | None = None) -> str:
    """The catalogue as Markdown."""
    reg = registry or get_registry()
    specs = [s for s in reg.specs() if s.distribution == FIRST_PARTY_DISTRIBUTION]
    lines = [
        "# Components",
        "",
        "Generated from the registry by `python -m xent_core.catalogue`; do not edit by hand.",
        "`xent info NAME` shows the full documentation of any component.",
        "",
    ]
    for kind in KINDS:
        group = [s for s in specs if s.kind == kind]
        if not group:
            continue
        lines += [f"## {_TITLES[kind]} ({len(group)})", ""]
        header = "| name | plugin | summary | parameters |"
        if kind == "loss":
            header = "| name | plugin | summary | inputs | parameters |"
        lines += [header, "|" + "---|" * (header.count("|") - 1)]
        for s in group:
            cells = [f"`{s.name}`", s.plugin, _cell(s.summary)]
            if kind == "loss":
                inputs = ", ".join([*s.inputs, *(f"[{o}]" for o in s.optional_inputs)])
                cells.append(_cell(inputs))
            cells.append(_cell(_params(s)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        described = [s for s in group if s.params]
        if described:
            lines += ["Parameters:", ""]
            for s in described:
                lines.append(f"- `{s.name}`")
                lines += [f"  - {_param_line(p)}" for p in s.params]
            lines.append("")
        cited = [s for s in group if s.citations]
        if cited:
            lines += ["References:", ""]
            lines += [f"- `{s.name}`: " + "; ".join(str(c) for c in s.citations) for s in cited]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m xent_core.catalogue", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
