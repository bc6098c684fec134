"""Component specs: the frozen record the registry keeps for every registered component.

A spec is built without importing the component's module when the plugin registers a lazy
``"module:attr"`` target: the metadata (docstring, parameters, inputs, citation, capabilities) is
read statically from the source with :mod:`ast`, so ``xent list`` and ``xent info`` never import
torch or triton. Components registered as live objects are described with :mod:`inspect`.

Class attributes a component may declare (literals, so they can be read statically):

``citation``
    ``("Title", "arXiv:XXXX.XXXXX")`` or a tuple of such pairs.
``inputs`` / ``optional_inputs``
    input names of a loss, overriding those read from ``forward``.
``capabilities``
    a dict such as ``{"differentiable": True, "devices": ("cpu", "cuda"), "requires": ("triton",)}``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RegistrationError, XentError

_MISSING_REPR = "<required>"
_NON_INPUT_PARAMS = {"self", "cls"}


@dataclass(frozen=True)
class Param:
    """One constructor parameter of a component."""

    name: str
    annotation: str = ""
    default: str = _MISSING_REPR
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "annotation": self.annotation,
            "default": None if self.required else self.default,
            "required": self.required,
        }


@dataclass(frozen=True)
class Citation:
    """A reference: title and arXiv id (or another identifier)."""

    title: str
    arxiv: str = ""

    def __str__(self) -> str:
        return f"{self.title} ({self.arxiv})" if self.arxiv else self.title


@dataclass(frozen=True)
class ComponentSpec:
    """Everything xent knows about a registered component, without importing it."""

    name: str
    kind: str
    plugin: str
    target: str | Callable[..., Any] = field(repr=False, compare=False)
    summary: str = ""
    doc: str = ""
    params: tuple[Param, ...] = ()
    accepts_extra_params: bool = False
    inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    citations: tuple[Citation, ...] = ()
    distribution: str | None = None
    version: str | None = None

    @property
    def qualified_id(self) -> str:
        """``plugin:name``, unique across the registry."""
        return f"{self.plugin}:{self.name}"

    @property
    def target_path(self) -> str:
        """The ``module:attr`` of the implementation."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def requirements(self) -> dict[str, bool]:
        """Packages the component needs, each mapped to whether it is importable here."""
        needs = self.capabilities.get("requires", ())
        return {mod: importlib.util.find_spec(mod) is not None for mod in needs}

    def availability(self) -> tuple[bool, str]:
        """Whether the component can run here, judged without importing it (or torch).

        Checks the packages named in ``capabilities["requires"]`` and, when
        ``capabilities["devices"]`` excludes ``"cpu"``, that an NVIDIA device is visible. A
        kernel's own ``available()`` gives the exact answer once it is created.
        """
        missing = [mod for mod, ok in self.requirements().items() if not ok]
        if missing:
            return False, "needs " + ", ".join(missing)
        devices = tuple(self.capabilities.get("devices", ()))
        if devices and "cpu" not in devices and not cuda_visible():
            return False, f"needs {'/'.join(devices)} (no GPU visible)"
        return True, "yes"

    def load(self) -> Callable[..., Any]:
        """Import and return the implementation (class or factory)."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a broken component must not look like a missing one
            raise XentError(
                f"component {self.qualified_id!r} failed to import {self.target!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (used by ``--json`` outputs and docs)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.qualified_id,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target_path,
            "summary": self.summary,
            "params": [p.to_dict() for p in self.params],
            "inputs": list(self.inputs),
            "optional_inputs": list(self.optional_inputs),
            "capabilities": _jsonable(dict(self.capabilities)),
            "requirements": self.requirements(),
            "available": self.availability()[0],
            "citations": [{"title": c.title, "arxiv": c.arxiv} for c in self.citations],
            "doc": self.doc,
        }


def cuda_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (no torch import)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


# --------------------------------------------------------------------------- metadata
@dataclass
class _Meta:
    doc: str = ""
    params: list[Param] = field(default_factory=list)
    accepts_extra_params: bool = False
    inputs: list[str] = field(default_factory=list)
    optional_inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def normalize_citations(raw: Any) -> tuple[Citation, ...]:
    """Accept ``("Title", "arXiv:id")``, a list of those, a str, or Citation objects."""
    if raw is None or raw == () or raw == []:
        return ()
    if isinstance(raw, Citation):
        return (raw,)
    if isinstance(raw, str):
        return (Citation(raw),)
    if isinstance(raw, Mapping):
        return (Citation(str(raw.get("title", "")), str(raw.get("arxiv", ""))),)
    if isinstance(raw, (tuple, list)):
        if len(raw) == 2 and all(isinstance(x, str) for x in raw):
            return (Citation(raw[0], raw[1]),)
        out: list[Citation] = []
        for item in raw:
            out.extend(normalize_citations(item))
        return tuple(out)
    raise RegistrationError(f"cannot read citation {raw!r}")


def _summary(doc: str) -> str:
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


# ---- static (AST) extraction for "module:attr" targets
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


def _params_from_args(args: ast.arguments, skip_first: bool) -> tuple[list[Param], bool]:
    positional = [*args.posonlyargs, *args.args]
    if skip_first and positional:
        positional = positional[1:]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(
        args.defaults
    )
    params = [
        Param(
            name=a.arg,
            annotation=ast.unparse(a.annotation) if a.annotation else "",
            default=ast.unparse(d) if d is not None else _MISSING_REPR,
            required=d is None,
        )
        for a, d in zip(positional, defaults)
    ]
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        params.append(
            Param(
                name=a.arg,
                annotation=ast.unparse(a.annotation) if a.annotation else "",
                default=ast.unparse(d) if d is not None else _MISSING_REPR,
                required=d is None,
            )
        )
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


def _method(chain: list[ast.ClassDef], name: str) -> ast.FunctionDef | None:
    """The first definition of method ``name`` along ``chain``."""
    for node in chain:
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == name:
                return item
    return None


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


def _static_meta(target: str) -> _Meta | None:
    module_name, _, attr = target.partition(":")
    parsed = _module_source(module_name)
    if parsed is None or "." in attr:
        return None
    tree, _ = parsed
    classes = _class_defs(tree)
    if attr in classes:
        chain = _class_chain(module_name, tree, classes[attr])
        meta = _Meta(doc=ast.get_docstring(classes[attr]) or "")
        init = _method(chain, "__init__")
        if init is not None:
            meta.params, meta.accepts_extra_params = _params_from_args(init.args, skip_first=True)
        forward = _method(chain, "forward")
        if forward is not None:
            meta.inputs, meta.optional_inputs = _forward_inputs(forward)
        meta.attrs = _class_attrs(chain)
        return meta
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            meta = _Meta(doc=ast.get_docstring(node) or "")
            meta.params, meta.accepts_extra_params = _params_from_args(node.args, skip_first=False)
            return meta
    return None


# ---- live (inspect) extraction
def _live_meta(obj: Callable[..., Any]) -> _Meta:
    meta = _Meta(doc=inspect.getdoc(obj) or "")
    init = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    try:
        sig = inspect.signature(init)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        for i, p in enumerate(sig.parameters.values()):
            if inspect.isclass(obj) and i == 0 and p.name in _NON_INPUT_PARAMS:
                continue
            if p.kind is p.VAR_KEYWORD:
                meta.accepts_extra_params = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                continue
            ann = p.annotation
            meta.params.append(
                Param(
                    name=p.name,
                    annotation=""
                    if ann is p.empty
                    else (ann if isinstance(ann, str) else repr(ann)),
                    default=_MISSING_REPR if p.default is p.empty else repr(p.default),
                    required=p.default is p.empty,
                )
            )
    forward = getattr(obj, "forward", None)
    if forward is not None:
        try:
            fsig = inspect.signature(forward)
        except (TypeError, ValueError):
            fsig = None
        if fsig is not None:
            for i, p in enumerate(fsig.parameters.values()):
                if i == 0 and p.name in _NON_INPUT_PARAMS:
                    continue
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                (meta.inputs if p.default is p.empty else meta.optional_inputs).append(p.name)
    for key in ("citation", "inputs", "optional_inputs", "capabilities"):
        if key in vars(obj) or (inspect.isclass(obj) and hasattr(obj, key)):
            meta.attrs[key] = getattr(obj, key)
    return meta


def build_spec(
    *,
    target: str | Callable[..., Any],
    name: str,
    kind: str,
    plugin: str,
    summary: str | None = None,
    citation: Any = None,
    inputs: tuple[str, ...] | list[str] | None = None,
    optional_inputs: tuple[str, ...] | list[str] | None = None,
    capabilities: Mapping[str, Any] | None = None,
    distribution: str | None = None,
    version: str | None = None,
) -> ComponentSpec:
    """Describe a component from its target; explicit arguments override what is read."""
    if isinstance(target, str):
        if ":" not in target:
            raise RegistrationError(f"lazy target {target!r} must look like 'package.module:attr'")
        meta = _static_meta(target)
        if meta is None:
            # The source could not be read statically (C extension, nested attr, ...): import it.
            try:
                module_name, _, attr = target.partition(":")
                obj: Any = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:
                raise RegistrationError(f"cannot resolve target {target!r}: {exc}") from exc
            meta = _live_meta(obj)
    elif callable(target):
        meta = _live_meta(target)
    else:
        raise RegistrationError(
            f"cannot register {target!r}: expected a class, a factory or a 'module:attr' string"
        )
    attrs = meta.attrs
    raw_inputs = inputs if inputs is not None else attrs.get("inputs", meta.inputs)
    raw_optional = (
        optional_inputs
        if optional_inputs is not None
        else attrs.get("optional_inputs", meta.optional_inputs)
    )
    caps = dict(attrs.get("capabilities") or {})
    caps.update(capabilities or {})
    return ComponentSpec(
        name=name,
        kind=kind,
        plugin=plugin,
        target=target,
        summary=summary if summary is not None else _summary(meta.doc),
        doc=meta.doc,
        params=tuple(meta.params),
        accepts_extra_params=meta.accepts_extra_params,
        inputs=tuple(raw_inputs) if kind == "loss" else (),
        optional_inputs=tuple(raw_optional) if kind == "loss" else (),
        capabilities=caps,
        citations=normalize_citations(citation if citation is not None else attrs.get("citation")),
        distribution=distribution,
        version=version,
    )
