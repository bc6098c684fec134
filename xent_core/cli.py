"""The ``xent`` command line: ``list``, ``info``, ``plugins``, plus plugin sub-commands.

Bad usage or bad input prints one line on stderr and exits 2; an internal failure exits 1. Add
``--debug`` anywhere to see the traceback instead. Listing and info never import torch.
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .components import ComponentSpec
from .errors import BadParameterError, XentError
from .jsonout import dumps, error_object, one_line
from .naming import normalize_kind
from .registry import get_registry


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="xent",
        help="xent: cross-entropy at scale. Losses, kernels, estimators and scaling-law fitters.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


app = _new_app()


def _console() -> Console:
    # piped output (files, CI logs, tests) gets a wide fixed width instead of rich's 80 columns
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"xent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """xent: cross-entropy at scale."""


def _availability(spec: ComponentSpec) -> str:
    return spec.availability()[1]


@app.command("list")
def list_command(
    kind: Annotated[
        str | None,
        typer.Argument(help="loss, estimator, kernel or scaling_model (default: all)."),
    ] = None,
    plugin: Annotated[str | None, typer.Option("--plugin", "-p", help="Only this plugin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered components."""
    registry = get_registry()
    if plugin is not None:
        _check_plugin(registry.plugins(), plugin)
    specs = registry.specs(normalize_kind(kind) if kind else None, plugin)
    if as_json:
        rows = [
            {
                "name": s.name,
                "kind": s.kind,
                "id": s.qualified_id,
                "plugin": s.plugin,
                "summary": s.summary,
                "available": s.availability()[0],
            }
            for s in specs
        ]
        typer.echo(dumps(rows))
        return
    show_avail = any(
        s.capabilities.get("requires") or "cpu" not in s.capabilities.get("devices", ("cpu",))
        for s in specs
    )
    table = Table(title=f"xent components ({len(specs)})", title_justify="left")
    for col in ("name", "kind", "plugin", "summary"):
        table.add_column(col, overflow="fold")
    if show_avail:
        table.add_column("available")
    for s in specs:
        row = [s.name, s.kind, s.plugin, escape(s.summary)]
        if show_avail:
            row.append(_availability(s))
        table.add_row(*row)
    _console().print(table)


def _check_plugin(infos: Sequence[Any], name: str) -> None:
    """Refuse ``--plugin NAME`` unless NAME is a loaded plugin (an empty listing would hide it)."""
    found = {p.name: p for p in infos}
    if name not in found:
        names = ", ".join(sorted(found)) or "none"
        raise BadParameterError(f"unknown plugin {name!r}; plugins found: {names}")
    if found[name].status != "loaded":
        info = found[name]
        raise BadParameterError(f"plugin {name!r} is {info.status}: {info.error}")


@app.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="Component name or plugin:name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a component: signature, parameters, inputs, capabilities, citation."""
    spec = get_registry().get(name)
    if as_json:
        typer.echo(dumps(spec.to_dict()))
        return
    con = _console()
    con.print(f"[bold]{spec.name}[/bold]  ({spec.kind}, {spec.qualified_id})")
    con.print(spec.summary, markup=False)
    sig = escape(", ".join(p.name if p.required else f"{p.name}={p.default}" for p in spec.params))
    con.print(
        f"\n[bold]create[/bold]   xent_core.{spec.kind}({spec.name!r}{', ' if sig else ''}{sig})",
        highlight=False,
    )
    if spec.params:
        table = Table("parameter", "type", "default", "description", box=None, pad_edge=False)
        for p in spec.params:
            default = "(required)" if p.required else p.default
            cells = (p.name, p.annotation or "-", default, p.description or "-")
            table.add_row(*map(escape, cells))  # list[float], alpha[y]: text, not markup
        con.print(table)
    if spec.kind == "loss":
        opt = f"; optional: {', '.join(spec.optional_inputs)}" if spec.optional_inputs else ""
        con.print(f"[bold]inputs[/bold]   {', '.join(spec.inputs) or '-'}{opt}", highlight=False)
    if spec.capabilities:
        caps = ", ".join(f"{k}={v}" for k, v in spec.capabilities.items())
        con.print(f"[bold]capabilities[/bold] {escape(caps)}", highlight=False)
    con.print(f"[bold]available[/bold] {escape(_availability(spec))}", highlight=False)
    if spec.kind == "estimator" and spec.capabilities.get("accumulate", "rows") == "rows":
        con.print(
            "[bold]metric[/bold]   no sufficient statistic: xent_core.metric keeps the rows "
            "(at most max_samples)",
            highlight=False,
        )
    reqs = spec.requirements()
    if reqs:
        con.print(
            "[bold]requires[/bold] "
            + ", ".join(f"{m} ({'installed' if ok else 'missing'})" for m, ok in reqs.items()),
            highlight=False,
        )
    for c in spec.citations:
        con.print(f"[bold]cite[/bold]     {c}", highlight=False)
    con.print(
        f"[bold]plugin[/bold]   {spec.plugin} ({spec.distribution or '?'} {spec.version or ''})".rstrip(),
        highlight=False,
    )
    con.print(f"[bold]target[/bold]   {spec.target_path}", highlight=False)
    if spec.doc and spec.doc.strip() != spec.summary:
        body = spec.doc.strip().split("\n", 1)
        if len(body) > 1:
            con.print("\n" + body[1].strip(), highlight=False, markup=False)


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show every plugin found, its version, status and component counts."""
    registry = get_registry()
    registry.commands()  # a plugin whose command hook fails is reported too
    infos = registry.plugins()
    if as_json:
        typer.echo(dumps([p.to_dict() for p in infos]))
        return
    table = Table(title="xent plugins", title_justify="left")
    for col in ("plugin", "distribution", "version", "status", "components", "error"):
        table.add_column(col, overflow="fold")
    for p in infos:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(p.counts.items())) or "-"
        style = {"loaded": "green", "failed": "red", "blocked": "yellow"}.get(p.status, "")
        table.add_row(
            p.name,
            p.distribution or "-",
            p.version or "-",
            f"[{style}]{p.status}[/{style}]" if style else p.status,
            counts,
            p.error or "",
        )
    _console().print(table)


_BUILTIN = {"list", "info", "plugins"}


ExceptionTypes = tuple[type[BaseException], ...]


def _click_exception_types() -> tuple[ExceptionTypes, ExceptionTypes, ExceptionTypes]:
    """(Exit, Abort, ClickException) classes of typer, click and typer's vendored click."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue

    def collect(attr: str, *extra: type[BaseException]) -> ExceptionTypes:
        found = [getattr(m, attr) for m in modules if hasattr(m, attr)]
        return tuple(dict.fromkeys([*extra, *found]))

    return (
        collect("Exit", typer.Exit),
        collect("Abort", typer.Abort),
        collect("ClickException"),
    )


def build_app() -> typer.Typer:
    """A fresh app: the built-in commands plus those of the current registry's plugins."""
    fresh = _new_app()
    fresh.registered_callback = app.registered_callback
    fresh.registered_commands = list(app.registered_commands)
    _add_plugin_commands(fresh)
    return fresh


def _merge_group(group: typer.Typer, other: typer.Typer, plugin: str, name: str) -> None:
    """Add ``other``'s sub-commands to ``group`` (same-named groups from several plugins)."""
    taken = {c.name for c in group.registered_commands} | {g.name for g in group.registered_groups}
    for cmd in other.registered_commands:
        if cmd.name is None or cmd.name in taken:
            _warn_command(plugin, f"{name} {cmd.name}")
            continue
        group.registered_commands.append(cmd)
        taken.add(cmd.name)
    for sub in other.registered_groups:
        if sub.name is None or sub.name in taken:
            _warn_command(plugin, f"{name} {sub.name}")
            continue
        group.registered_groups.append(sub)
        taken.add(sub.name)


def _fresh_group(obj: typer.Typer) -> typer.Typer:
    """A shallow copy of a plugin's group with its own command lists (merging never edits it)."""
    group = copy.copy(obj)
    group.registered_commands = list(obj.registered_commands)
    group.registered_groups = list(obj.registered_groups)
    return group


def _add_plugin_commands(app: typer.Typer) -> None:
    registry = get_registry()
    existing = set(_BUILTIN) | {c.name for c in app.registered_commands if c.name}
    existing |= {g.name for g in app.registered_groups if g.name}
    groups: dict[str, typer.Typer] = {}
    for plugin, obj, name in registry.commands():
        if isinstance(obj, typer.Typer):
            cmd_name = name or obj.info.name
            if isinstance(cmd_name, str) and cmd_name in groups:
                _merge_group(groups[cmd_name], obj, plugin, cmd_name)
                continue
            if not isinstance(cmd_name, str) or cmd_name in existing:
                _warn_command(plugin, cmd_name)
                continue
            groups[cmd_name] = _fresh_group(obj)
            app.add_typer(groups[cmd_name], name=cmd_name)
        elif callable(obj):
            cmd_name = name or obj.__name__.replace("_", "-")
            if cmd_name in existing:
                _warn_command(plugin, cmd_name)
                continue
            app.command(cmd_name)(obj)
        else:
            _warn_command(plugin, str(name))
            continue
        existing.add(cmd_name)


def _warn_command(plugin: str, name: object) -> None:
    print(
        f"xent: warning: plugin {plugin!r} command {name!r} skipped (missing or duplicate name)",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xent`` script; returns the exit code.

    Errors print one line on stderr; under ``--json`` a JSON error object is printed on stdout as
    well, so a caller that parses stdout always gets JSON.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    as_json = "--json" in args
    exit_types, abort_types, click_types = _click_exception_types()

    def fail(exc: BaseException, line: str, code: int) -> int:
        print(line, file=sys.stderr)
        if as_json:
            print(dumps(error_object(exc, code)))
        return code

    try:
        cli = build_app()
        result: Any = cli(args=args, prog_name="xent", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except exit_types as exc:
        return int(cast(Any, exc).exit_code)
    except abort_types as exc:
        return fail(exc, "xent: aborted", 130)
    except click_types as exc:
        if debug:
            raise
        click_exc: Any = exc  # typer's vendored click or click itself
        if type(exc).__name__ == "NoArgsIsHelpError":
            click_exc.show()
            return 0
        message = f"{one_line(click_exc.format_message())} (see 'xent --help')"
        return fail(exc, f"xent: error: {message}", int(click_exc.exit_code))
    except XentError as exc:
        if debug:
            raise
        return fail(exc, f"xent: error: {one_line(str(exc))}", 2)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        line = (
            f"xent: internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(run with --debug for the traceback)"
        )
        return fail(exc, line, 1)


def run() -> None:
    """Console-script wrapper that exits with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
