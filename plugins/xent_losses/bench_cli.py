"""``xent bench losses``: every loss against its peer, each variant in a fresh process.

Registered by ``xent_losses``'s ``register_commands`` hook in the ``bench`` command group (the
core merges it with the other plugins' ``bench`` sub-commands). Nothing heavy is imported until
the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from xent_core.bench_cli import (
    AppendDocsOption,
    CaseOption,
    ClockOption,
    JsonOption,
    MinTimeOption,
    NoteOption,
    RepeatsOption,
    bench_group,
    check_run,
)

bench_app = bench_group()

_DTYPES = ("fp32", "bf16", "fp16", "fp64")


@bench_app.command("losses")
def losses(
    case: CaseOption = None,
    dtype: Annotated[str, typer.Option("--dtype", help="fp32, bf16, fp16 or fp64.")] = "fp32",
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="Items N.")] = 2048,
    cols: Annotated[int, typer.Option("--cols", "-v", min=1, help="Classes C.")] = 32768,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads.")] = 1,
    min_time: MinTimeOption = 1.0,
    checks: Annotated[
        bool, typer.Option("--checks", help="Input checks on (default off).")
    ] = False,
    compiled: Annotated[
        bool, typer.Option("--compiled/--no-compiled", help="Also time torch.compile (inductor).")
    ] = True,
    repeats: RepeatsOption = 5,
    clock: ClockOption = "cpu",
    json_path: JsonOption = None,
    append_docs: AppendDocsOption = None,
    note: NoteOption = "",
) -> None:
    """Time forward+backward and peak memory of every loss against its peer, side by side."""
    from xent_core import BadParameterError
    from xent_core.benchmarking import run_and_print

    from .bench import bench_cases, unlisted

    if dtype not in _DTYPES:
        raise BadParameterError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    check_run(case, clock, bench_cases())
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
