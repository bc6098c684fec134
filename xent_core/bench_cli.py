"""What the plugins' ``xent bench`` sub-commands share: the group, the common options, checks.

A plugin registers its own ``bench`` group through the ``register_commands`` hook (the core
merges the groups), declares its run options with the aliases below, and calls
:func:`check_run` before :func:`xent_core.benchmarking.run_and_print`. Importing this module
imports Typer only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from .errors import BadParameterError

CLOCKS = ("cpu", "wall")

CaseOption = Annotated[
    list[str] | None,
    typer.Option("--case", "-c", help="Case name, repeatable (default: every case)."),
]
MinTimeOption = Annotated[
    float, typer.Option("--min-time", min=0.0, help="Seconds of timed runs per variant.")
]
RepeatsOption = Annotated[
    int, typer.Option("--repeats", min=1, help="Alternating xent/peer rounds per case.")
]
ClockOption = Annotated[
    str, typer.Option("--clock", help="cpu (process CPU time, default) or wall.")
]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Write rows here.")]
AppendDocsOption = Annotated[
    Path | None, typer.Option("--append-docs", help="Append a Markdown section here.")
]
NoteOption = Annotated[str, typer.Option("--note", help="A line under the heading.")]


def bench_group() -> typer.Typer:
    """A new ``bench`` command group for one plugin's sub-commands."""
    app = typer.Typer(
        name="bench",
        help="Benchmarks (each implementation in a fresh process).",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.callback()
    def _bench() -> None:
        """Benchmarks (each implementation in a fresh process)."""

    return app


def check_run(case: list[str] | None, clock: str, known: Iterable[str]) -> None:
    """Raise :class:`BadParameterError` for an unknown ``--clock`` or ``--case`` name."""
    if clock not in CLOCKS:
        raise BadParameterError(f"--clock must be cpu or wall, got {clock!r}")
    known = list(known)
    unknown = [c for c in case or [] if c not in known]
    if unknown:
        raise BadParameterError(f"unknown case {unknown[0]!r}; cases: {', '.join(known)}")
