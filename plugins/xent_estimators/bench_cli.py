"""``xent bench estimators``: kNN estimators against the cKDTree formula, fresh processes.

Registered by ``xent_estimators``'s ``register_commands`` hook in the ``bench`` command group
(merged by the core with the other plugins' ``bench`` sub-commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks (each implementation in a fresh process).",
    no_args_is_help=True,
    add_completion=False,
)


@bench_app.callback()
def _bench() -> None:
    """Benchmarks (each implementation in a fresh process)."""


@bench_app.command("estimators")
def estimators(
    case: Annotated[
        list[str] | None,
        typer.Option("--case", "-c", help="Case name, repeatable (default: every case)."),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", "-n", min=10, help="Samples n.")] = 20000,
    dims: Annotated[int, typer.Option("--dims", "-d", min=1, help="Dimension per variable.")] = 2,
    min_time: Annotated[
        float, typer.Option("--min-time", min=0.0, help="Seconds of timed runs per variant.")
    ] = 1.0,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Alternating xent/peer rounds per case.")
    ] = 5,
    clock: Annotated[
        str, typer.Option("--clock", help="cpu (process CPU time, default) or wall.")
    ] = "cpu",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write rows here.")] = None,
    append_docs: Annotated[
        Path | None, typer.Option("--append-docs", help="Append a Markdown section here.")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="A line under the heading.")] = "",
) -> None:
    """Time the kNN estimators against the cKDTree formula (NPEET's method), side by side."""
    from xent_core import BadParameterError
    from xent_core.benchmarking import run_and_print

    from .bench import bench_cases

    if clock not in ("cpu", "wall"):
        raise BadParameterError(f"--clock must be cpu or wall, got {clock!r}")
    known = bench_cases()
    unknown = [c for c in case or [] if c not in known]
    if unknown:
        raise BadParameterError(f"unknown case {unknown[0]!r}; cases: {', '.join(known)}")
    run_and_print(
        "xent_estimators.bench",
        case,
        f"estimators: n={rows}, d={dims} per variable",
        size={"rows": rows, "cols": dims},
        dtype="fp64",
        threads=1,
        min_time=min_time,
        checks=True,
        compiled=False,
        repeats=repeats,
        clock=clock,
        json_path=json_path,
        append_docs=append_docs,
        note=note,
    )
