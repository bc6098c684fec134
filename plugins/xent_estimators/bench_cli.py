"""``xent bench estimators``: every estimator against its peer or plain formula, fresh processes.

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
    rows: Annotated[
        int | None,
        typer.Option(
            "--rows",
            "-n",
            min=10,
            help="Rows (samples n) of every case run; default: each case's own.",
        ),
    ] = None,
    dims: Annotated[
        int | None,
        typer.Option(
            "--dims",
            "-d",
            min=1,
            help="Columns (dimension per variable) of every case run; default: each case's own.",
        ),
    ] = None,
    min_time: MinTimeOption = 1.0,
    repeats: RepeatsOption = 5,
    clock: ClockOption = "cpu",
    json_path: JsonOption = None,
    append_docs: AppendDocsOption = None,
    note: NoteOption = "",
) -> None:
    """Time every estimator against its peer library or plain formula, side by side.

    The kNN estimators run at n=20000, d=2 per variable by default; the others at their own
    sizes (``size`` of each row in ``--json``). A registered estimator without a row is listed below the table.
    """
    from xent_core.benchmarking import run_and_print

    from .bench import bench_cases, unlisted

    check_run(case, clock, bench_cases())
    size = {k: v for k, v in (("rows", rows), ("cols", dims)) if v is not None}
    shown = ", ".join(f"{k}={v}" for k, v in size.items()) or "each case's own size"
    run_and_print(
        "xent_estimators.bench",
        case,
        f"estimators: {shown}",
        size=size or None,
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
        unlisted=unlisted(),
    )
