"""``xent bench losses``: every loss against its peer, each variant in a fresh process.

Registered by ``xent_losses``'s ``register_commands`` hook in the ``bench`` command group (the
core merges it with the other plugins' ``bench`` sub-commands). Nothing heavy is imported until
the command runs.
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

_DTYPES = ("fp32", "bf16", "fp16", "fp64")


@bench_app.callback()
def _bench() -> None:
    """Benchmarks (each implementation in a fresh process)."""


@bench_app.command("losses")
def losses(
    case: Annotated[
        list[str] | None,
        typer.Option("--case", "-c", help="Case name, repeatable (default: every case)."),
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="fp32, bf16, fp16 or fp64.")] = "fp32",
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="Items N.")] = 2048,
    cols: Annotated[int, typer.Option("--cols", "-v", min=1, help="Classes C.")] = 32768,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads.")] = 1,
    min_time: Annotated[
        float, typer.Option("--min-time", min=0.0, help="Seconds of timed runs per variant.")
    ] = 1.0,
    checks: Annotated[
        bool, typer.Option("--checks", help="Input checks on (default off).")
    ] = False,
    compiled: Annotated[
        bool, typer.Option("--compiled/--no-compiled", help="Also time torch.compile (inductor).")
    ] = True,
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
    """Time forward+backward and peak memory of every loss against its peer, side by side."""
    from xent_core import BadParameterError

    from .bench import bench_cases, unlisted

    if dtype not in _DTYPES:
        raise BadParameterError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if clock not in ("cpu", "wall"):
        raise BadParameterError(f"--clock must be cpu or wall, got {clock!r}")
    known = bench_cases()
    unknown = [c for c in case or [] if c not in known]
    if unknown:
        raise BadParameterError(f"unknown case {unknown[0]!r}; cases: {', '.join(known)}")
    from xent_core.benchmarking import run_and_print

    run_and_print(
        "xent_losses.bench",
        case,
        f"losses: N={rows} C={cols} {dtype}, forward+backward, checks {'on' if checks else 'off'}",
        size={"rows": rows, "cols": cols},
        dtype=dtype,
        threads=threads,
        min_time=min_time,
        checks=checks,
        compiled=compiled,
        repeats=repeats,
        clock=clock,
        json_path=json_path,
        append_docs=append_docs,
        note=note,
        unlisted=unlisted(),
    )


if __name__ == "__main__":
    bench_app()
