"""The static reader: describe a lazy ``"module:attr"`` target from its source, with :mod:`ast`.

Nothing is imported, so ``xent list`` and ``xent info`` never import torch or triton. The class
and its bases (those defined in the same module or imported with ``from module import Base``
from an already-imported package) are read: ``__init__`` gives the parameters (``**kwargs`` are
followed to the base class ``__init__``), ``forward`` the inputs, literal class attributes the
metadata (``citation``, ``inputs``, ``optional_inputs``, ``capabilities``), and the ``Args:``
sections of the docstrings the parameter descriptions.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._docstrings import describe
from ._records import MISSING_REPR, Meta, Param


def _module_source(module_name: str) -> tuple[ast.Module, Path] | None:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin)
    try:
        return ast.parse(path.read_text(encoding="utf-8")), path
    except (OSError, SyntaxError):
        return None


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None


def _param(arg: ast.arg, default: ast.expr | None) -> Param:
    return Param(
        name=arg.arg,
        annotation=ast.unparse(arg.annotation) if arg.annotation else "",
        default=ast.unparse(default) if default is not None else MISSING_REPR,
        required=default is None,
    )


def _params_from_args(args: ast.arguments, skip_first: bool) -> tuple[list[Param], bool]:
    positional = [*args.posonlyargs, *args.args]
    if skip_first and positional:
        positional = positional[1:]
    padding: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    params = [_param(a, d) for a, d in zip(positional, [*padding, *args.defaults])]
    params += [_param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return params, args.kwarg is not None


def _class_defs(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _imported_names(tree: ast.Module, module_name: str) -> dict[str, tuple[str, str]]:
    """``{local name: (module, attr)}`` for the ``from X import Y`` statements of a module."""
    package = module_name.rpartition(".")[0]
    out: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        try:
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
        except (ImportError, ValueError):
            continue
        for alias in node.names:
            out[alias.asname or alias.name] = (source, alias.name)
    return out


def _class_chain(module_name: str, tree: ast.Module, cls: ast.ClassDef) -> list[ast.ClassDef]:
    """``cls`` and its base classes, read statically, nearest first (an approximate MRO).

    Bases defined in the same module or imported with ``from module import Base`` (absolute or
    relative) are followed, so a plugin can share ``__init__``/``forward`` through a base class
    in another module of its package; other bases (``torch.nn.Module``, ...) end the chain.
    """
    chain: list[ast.ClassDef] = []
    todo: list[tuple[str, ast.Module, ast.ClassDef]] = [(module_name, tree, cls)]
    seen: set[tuple[str, str]] = set()
    while todo:
        mod, mod_tree, node = todo.pop(0)
        if (mod, node.name) in seen:
            continue
        seen.add((mod, node.name))
        chain.append(node)
        local = _class_defs(mod_tree)
        imported = _imported_names(mod_tree, mod)
        for base in node.bases:
            if not isinstance(base, ast.Name):
                continue
            if base.id in local:
                todo.append((mod, mod_tree, local[base.id]))
            elif base.id in imported:
                other_mod, other_name = imported[base.id]
                parent = other_mod.rpartition(".")[0]
                if parent and parent not in sys.modules:
                    continue  # finding it would import its package (torch.nn, ...): stop here
                parsed = _module_source(other_mod)
                if parsed is not None and other_name in _class_defs(parsed[0]):
                    todo.append((other_mod, parsed[0], _class_defs(parsed[0])[other_name]))
    return chain


def _method(chain: list[ast.ClassDef], name: str) -> tuple[int, ast.FunctionDef] | None:
    """The first definition of method ``name`` along ``chain``, with its position."""
    for i, node in enumerate(chain):
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == name:
                return i, item
    return None


def _init_params(chain: list[ast.ClassDef]) -> tuple[list[Param], bool, list[str]]:
    """Parameters of the ``__init__`` along ``chain``, following ``**kwargs`` up the chain.

    An ``__init__`` that takes ``**kwargs`` accepts the parameters of the next ``__init__``
    above it (the one ``super().__init__(**kwargs)`` reaches); those not declared already are
    appended. Also returns the docstrings to read parameter descriptions from, nearest first.
    """
    params: list[Param] = []
    extra = False
    docs: list[str] = []
    start = 0
    while (found := _method(chain[start:], "__init__")) is not None:
        index, init = found
        own, extra = _params_from_args(init.args, skip_first=True)
        names = {p.name for p in params}
        params += [p for p in own if p.name not in names]
        docs.append(ast.get_docstring(init) or "")
        start += index + 1
        if not extra or _method(chain[start:], "__init__") is None:
            break
    return params, extra, docs


def _class_attrs(chain: list[ast.ClassDef]) -> dict[str, Any]:
    """Literal class attributes along ``chain`` (nearer classes win)."""
    attrs: dict[str, Any] = {}
    for node in reversed(chain):
        for item in node.body:
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(item, ast.Assign):
                targets, value = item.targets, item.value
            elif isinstance(item, ast.AnnAssign) and item.value is not None:
                targets, value = [item.target], item.value
            for t in targets:
                if isinstance(t, ast.Name) and value is not None:
                    lit = _literal(value)
                    if lit is not None:
                        attrs[t.id] = lit
    return attrs


def _forward_inputs(fn: ast.FunctionDef) -> tuple[list[str], list[str]]:
    params, _ = _params_from_args(fn.args, skip_first=True)
    required = [p.name for p in params if p.required]
    optional = [p.name for p in params if not p.required]
    return required, optional


def _described(params: list[Param], docs: list[str]) -> list[Param]:
    found = describe([p.name for p in params], docs)
    return [replace(p, description=found.get(p.name, "")) for p in params]


def static_meta(target: str) -> Meta | None:
    """What the source of ``"module:attr"`` says, or ``None`` when it cannot be read statically."""
    module_name, _, attr = target.partition(":")
    parsed = _module_source(module_name)
    if parsed is None or "." in attr:
        return None
    tree, _ = parsed
    classes = _class_defs(tree)
    if attr in classes:
        chain = _class_chain(module_name, tree, classes[attr])
        meta = Meta(doc=ast.get_docstring(classes[attr]) or "")
        params, meta.accepts_extra_params, init_docs = _init_params(chain)
        class_docs = [ast.get_docstring(c) or "" for c in chain]
        meta.params = _described(params, [class_docs[0], *init_docs, *class_docs[1:]])
        forward = _method(chain, "forward")
        if forward is not None:
            meta.inputs, meta.optional_inputs = _forward_inputs(forward[1])
        meta.attrs = _class_attrs(chain)
        return meta
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            meta = Meta(doc=ast.get_docstring(node) or "")
            params, meta.accepts_extra_params = _params_from_args(node.args, skip_first=False)
            meta.params = _described(params, [meta.doc])
            return meta
    return None
