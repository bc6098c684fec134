"""The core's import graph: no cycles, every module importable alone, no torch on import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "xent_core"
MODULES = sorted(
    "xent_core." + ".".join(p.relative_to(CORE).with_suffix("").parts).replace(".__init__", "")
    for p in CORE.rglob("*.py")
    if p.name != "__main__.py"
)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks, function bodies included."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Modules of ``xent_core`` that ``path`` imports anywhere at run time (lazy imports too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ("." * node.level + (node.module or "")) if node.level else node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(filter(None, [*parts, node.module or ""]))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != module)
    return out


def test_core_import_graph_has_no_cycle():
    graph = {}
    for path in CORE.rglob("*.py"):
        name = "xent_core." + ".".join(path.relative_to(CORE).with_suffix("").parts)
        name = name.replace(".__init__", "")
        graph[name] = _imports(path, name) - {"xent_core"}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*trail, node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


@pytest.mark.parametrize("module", MODULES)
def test_each_core_module_imports_alone(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)


def test_importing_xent_core_does_not_import_torch():
    code = (
        "import sys, xent_core\n"
        "xent_core.list_components()\n"
        "xent_core.stack_spec.parse_stack_spec('a + 0.5*b(x=1)')\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
