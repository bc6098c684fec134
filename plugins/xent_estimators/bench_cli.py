"""``xent bench estimators``: kNN estimators against the cKDTree formula, fresh processes.

Registered by ``xent_estimators``'s ``register_commands`` hook in the ``bench`` command group
(merged by the core with the other plugins' ``bench`` sub-commands).
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


@bench_app.command("estimators")
def estimators(
    case: CaseOption = None,
    rows: Annotated[int, typer.Option("--rows", "-n", min=10, help="Samples n.")] = 20000,
    dims: Annotated[int, typer.Option("--dims", "-d", min=1, help="Dimension per variable.")] = 2,
    min_time: MinTimeOption = 1.0,
    repeats: RepeatsOption = 5,
    clock: ClockOption = "cpu",
    json_path: JsonOption = None,
    append_docs: AppendDocsOption = None,
    note: NoteOption = "",
) -> None:
    """Time the kNN estimators against the cKDTree formula (NPEET's method), side by side."""
    from xent_core.benchmarking import run_and_print

    from .bench import bench_cases

    check_run(case, clock, bench_cases())
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
