"""The registry: loads plugins from the ``xent`` entry-point group and holds component specs.

Every plugin, first-party or third-party, is an entry point of the group ``xent`` whose value is
a module with hook implementations. Each plugin is imported, validated and asked to register in
its own ``try``/``except`` (``SystemExit`` and any other ``BaseException`` included, only
``KeyboardInterrupt`` passes): a broken plugin is reported by ``xent plugins`` and never hides the
others. What a plugin prints while loading goes to stderr, so ``--json`` output stays JSON;
malformed ``capabilities`` fail the plugin at registration.

Environment controls (read when a registry loads):

``XENT_LOAD_PLUGINS``
    comma-separated allow-list of third-party plugins (entry-point or distribution names);
    set but empty means "no third-party plugins". First-party plugins always load.
``XENT_DISABLE_PLUGINS``
    comma-separated deny-list (any plugin, first-party included).
``XENT_TRACE_PLUGINS=1``
    trace plugin loading and every hook call to stderr.
``XENT_STRICT_PLUGINS=1``
    raise :class:`~xent_core.errors.PluginLoadError` on the first plugin that fails (for plugin
    authors' CI) instead of reporting it and carrying on.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pluggy

from . import hookspecs
from ._component_checks import check_capabilities, check_params
from ._hooks import PluginHooks
from ._sources import (
    ENTRY_POINT_GROUP,
    FIRST_PARTY_DISTRIBUTION,
    PluginInfo,
    PluginSource,
    discover_entry_points,
    split_env,
)
from .components import ComponentSpec, build_spec
from .errors import (
    AmbiguousComponentError,
    PluginLoadError,
    RegistrationError,
    UnknownComponentError,
)
from .naming import KINDS, is_canonical, kebab_from_identifier, normalize_kind, normalize_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_DISTRIBUTION",
    "PluginInfo",
    "PluginSource",
    "Registry",
    "check_capabilities",
    "check_params",
    "discover_entry_points",
    "get_registry",
    "set_registry",
]


class Registry:
    """Plugins and the components they registered."""

    def __init__(
        self,
        sources: Iterable[PluginSource] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._hooks = PluginHooks(self._pm)
        self._plugins: dict[str, PluginInfo] = {}
        self._plugin_objects: dict[str, object] = {}
        self._specs: dict[str, ComponentSpec] = {}
        self._commands: list[tuple[str, Any, str | None]] | None = None
        self._trace = self._env.get("XENT_TRACE_PLUGINS", "") not in ("", "0", "false")
        self._strict = self._env.get("XENT_STRICT_PLUGINS", "") not in ("", "0", "false")
        if self._trace:
            self._pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[xent trace] {msg}"))
            self._pm.enable_tracing()
        self._load(discover_entry_points() if sources is None else list(sources))

    # ------------------------------------------------------------------ loading
    def _log(self, message: str) -> None:
        if self._trace:
            print(f"[xent trace] {message}", file=sys.stderr)

    def _blocked_reason(self, src: PluginSource) -> str | None:
        names = {normalize_name(src.name)}
        if src.distribution:
            names.add(normalize_name(src.distribution))
        deny = split_env(self._env.get("XENT_DISABLE_PLUGINS"))
        if deny and names & deny:
            return "disabled by XENT_DISABLE_PLUGINS"
        allow = split_env(self._env.get("XENT_LOAD_PLUGINS"))
        if allow is not None and src.distribution != FIRST_PARTY_DISTRIBUTION and not names & allow:
            return "not in XENT_LOAD_PLUGINS"
        return None

    def _load(self, sources: list[PluginSource]) -> None:
        for src in sources:
            info = PluginInfo(src.name, src.module, src.distribution, src.version)
            if src.name in self._plugins:
                other = self._plugins[src.name]
                info.status, info.error = (
                    "failed",
                    (
                        f"plugin name {src.name!r} is already used by {other.distribution or other.module}"
                    ),
                )
                self._plugins[f"{src.name}@{src.distribution or src.module}"] = info
                if self._strict:
                    raise PluginLoadError(info.error)
                continue
            self._plugins[src.name] = info
            reason = self._blocked_reason(src)
            if reason:
                info.status, info.error = "blocked", reason
                self._log(f"plugin {src.name}: blocked ({reason})")
                continue
            self._load_one(src, info)
            if info.status == "failed" and self._strict:
                raise PluginLoadError(f"plugin {src.name!r} failed: {info.error}")

    def _load_one(self, src: PluginSource, info: PluginInfo) -> None:
        self._log(f"plugin {src.name}: importing {src.module}")
        try:
            with _plugin_stdout():
                module = src.load()
        except BaseException as exc:  # SystemExit in a plugin must not kill the host
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.status, info.error = "failed", f"import failed: {_describe(exc)}"
            return
        try:
            self._pm.register(module, name=src.name)
            self._pm.check_pending()
        except Exception as exc:
            if self._pm.is_registered(module):
                self._pm.unregister(module)
            info.status, info.error = "failed", f"invalid hooks: {exc}"
            return
        staged: dict[str, ComponentSpec] = {}
        for kind, hook_name in hookspecs.KIND_HOOKS.items():
            if not self._hooks.implements(hook_name, module):
                continue
            register = self._make_register(src, kind, staged)
            try:
                with _plugin_stdout():
                    self._hooks.register_components(hook_name, module, register)
            except BaseException as exc:  # sys.exit() in a hook must not kill the host either
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.status = "failed"
                info.error = f"{hook_name} raised {_describe(exc)}"
                self._pm.unregister(module)
                return
        self._specs.update(staged)
        self._plugin_objects[src.name] = module
        for spec in staged.values():
            info.counts[spec.kind] = info.counts.get(spec.kind, 0) + 1
        info.status = "loaded"
        self._log(f"plugin {src.name}: loaded {len(staged)} components")

    def _make_register(
        self, src: PluginSource, kind: str, staged: dict[str, ComponentSpec]
    ) -> hookspecs.Register:
        def register(obj: Any, name: str | None = None, **metadata: Any) -> None:
            if name is None:
                attr = (
                    obj.rpartition(":")[2] if isinstance(obj, str) else getattr(obj, "__name__", "")
                )
                name = kebab_from_identifier(attr.rpartition(".")[2])
            canonical = normalize_name(name)
            if not is_canonical(canonical):
                raise RegistrationError(
                    f"invalid component name {name!r}: use lowercase kebab-case"
                )
            unknown = set(metadata) - {
                "summary",
                "citation",
                "inputs",
                "optional_inputs",
                "capabilities",
            }
            if unknown:
                raise RegistrationError(f"unknown registration metadata: {sorted(unknown)}")
            qid = f"{src.name}:{canonical}"
            if qid in staged or qid in self._specs:
                raise RegistrationError(f"{qid} is registered twice")
            if metadata.get("capabilities") is not None:
                check_capabilities(qid, metadata["capabilities"])
            spec = build_spec(
                target=obj,
                name=canonical,
                kind=kind,
                plugin=src.name,
                distribution=src.distribution,
                version=src.version,
                **metadata,
            )
            check_capabilities(qid, spec.capabilities)  # class attributes are read too
            staged[qid] = spec
            self._log(f"registered {kind} {qid}")

        return register

    # ------------------------------------------------------------------ queries
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, with its status."""
        return list(self._plugins.values())

    def specs(self, kind: str | None = None, plugin: str | None = None) -> list[ComponentSpec]:
        """Registered components, sorted by kind then name."""
        k = normalize_kind(kind) if kind else None
        out = [
            s
            for s in self._specs.values()
            if (k is None or s.kind == k) and (plugin is None or s.plugin == plugin)
        ]
        return sorted(out, key=lambda s: (KINDS.index(s.kind), s.name, s.plugin))

    def get(self, name: str, kind: str | None = None) -> ComponentSpec:
        """Resolve a short or qualified name (any case, ``_`` or ``-``) to one spec."""
        k = normalize_kind(kind) if kind else None
        what = k.replace("_", " ") if k else "component"
        if ":" in name:
            plugin, _, short = name.partition(":")
            qid = f"{plugin.strip()}:{normalize_name(short)}"
            spec = self._specs.get(qid)
            if spec is not None and (k is None or spec.kind == k):
                return spec
            matches: list[ComponentSpec] = []
        else:
            short = normalize_name(name)
            matches = [
                s for s in self._specs.values() if s.name == short and (k is None or s.kind == k)
            ]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                ids = ", ".join(sorted(s.qualified_id for s in matches))
                raise AmbiguousComponentError(
                    f"{what} name {name!r} is registered by several plugins: {ids}; "
                    "use a qualified id plugin:name"
                )
        pool = [s for s in self._specs.values() if k is None or s.kind == k]
        candidates = sorted({s.name for s in pool} | {s.qualified_id for s in pool})
        close = difflib.get_close_matches(normalize_name(name), candidates, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        loaded = ", ".join(p.name for p in self._plugins.values() if p.status == "loaded") or "none"
        raise UnknownComponentError(f"unknown {what} {name!r}{hint} (plugins loaded: {loaded})")

    def create(self, name: str, kind: str, /, **params: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``params`` (checked against its spec)."""
        spec = self.get(name, kind)
        check_params(spec, params)
        obj = spec.load()
        instance = obj(**params)
        with contextlib.suppress(AttributeError, TypeError):
            instance.xent_spec = spec
        return instance

    # ------------------------------------------------------------------ CLI commands
    def commands(self) -> list[tuple[str, Any, str | None]]:
        """``(plugin, command_or_app, name)`` from every plugin's ``register_commands``."""
        if self._commands is None:
            self._commands = []
            for pname, module in self._plugin_objects.items():
                if not self._hooks.implements("register_commands", module):
                    continue
                staged: list[tuple[str, Any, str | None]] = []

                def register(
                    obj: Any,
                    name: str | None = None,
                    _s: list[tuple[str, Any, str | None]] = staged,
                    _p: str = pname,
                ) -> None:
                    _s.append((_p, obj, name))

                try:
                    with _plugin_stdout():
                        self._hooks.register_commands(module, register)
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    info = self._plugins[pname]
                    info.status = "failed"
                    info.error = f"register_commands raised {_describe(exc)}"
                    continue
                self._commands.extend(staged)
        return list(self._commands)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit (the plugin called sys.exit({exc.code!r}))"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _plugin_stdout() -> Iterator[None]:
    """Send what a plugin prints while loading to stderr: stdout belongs to ``--json`` output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


_default: Registry | None = None
_default_lock = threading.RLock()


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use (once, even on a concurrent first call)."""
    registry = _default
    if registry is not None:
        return registry
    with _default_lock:
        if _default is None:
            set_registry(Registry())
        assert _default is not None
        return _default


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (``None`` reloads on next use); returns the old one."""
    global _default
    with _default_lock:
        old, _default = _default, registry
    return old
