"""``xent bench linear-ce``: side-by-side time and memory of the linear cross-entropy kernels.

Registered by ``xent_cce``'s ``register_commands`` hook as the ``bench`` command group. Also
runnable without the core CLI: ``python -m xent_cce.bench.cli linear-ce --tokens 4096 ...``.
Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xent_core.bench_cli import bench_group

bench_app = bench_group()

_DTYPES = ("fp32", "fp16", "bf16")


@bench_app.command("linear-ce")
def linear_ce(
    tokens: Annotated[int, typer.Option("--tokens", "-n", min=1, help="Tokens N.")] = 4096,
    vocab: Annotated[int, typer.Option("--vocab", "-v", min=1, help="Vocabulary size V.")] = 32768,
    hidden: Annotated[int, typer.Option("--hidden", "-d", min=1, help="Hidden size D.")] = 512,
    dtype: Annotated[str, typer.Option("--dtype", help="fp32, fp16 or bf16.")] = "fp32",
    impl: Annotated[
        list[str] | None,
        typer.Option(
            "--impl",
            "-i",
            help="Kernel spec, repeatable: -i naive -i cce-torch -i 'torch-native(chunked=True)'. "
            "Default: every available kernel for the device.",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 or auto.")] = "auto",
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1, help="Timed runs.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 1,
    filter_eps: Annotated[
        str, typer.Option("--filter-eps", help="'auto', 'none' or a number.")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (JSON) here.")
    ] = None,
    append_docs: Annotated[
        Path | None,
        typer.Option("--append-docs", help="Append a Markdown section to this file."),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="A line under the Markdown heading.")] = "",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per kernel before giving up.")
    ] = 1800.0,
) -> None:
    """Time forward+backward and peak memory of linear cross-entropy kernels, side by side."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from xent_core import BadParameterError

    from .runner import (
        HEADERS,
        BenchConfig,
        markdown,
        memory_note,
        notes,
        rows,
        run_bench,
    )

    if dtype not in _DTYPES:
        raise BadParameterError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    device = _check_request(list(impl or []), device, timeout)
    cfg = BenchConfig(
        tokens=tokens,
        vocab=vocab,
        hidden=hidden,
        dtype=dtype,
        device=device,
        impls=list(impl or []),
        repeats=repeats,
        warmup=warmup,
        seed=seed,
        filter_eps=filter_eps,
        timeout_s=timeout,
    )
    console = Console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_start(name: str, total: int) -> None:
            tasks[name] = progress.add_task(name, total=total)

        def on_progress(msg: dict[str, Any]) -> None:
            task = tasks.get(msg.get("impl", "")) or (list(tasks.values())[-1] if tasks else None)
            if task is not None:
                progress.update(task, completed=msg.get("done", 0))

        report = run_bench(cfg, on_start=on_start, on_progress=on_progress)

    env = report["environment"]
    title = f"linear-ce N={tokens} V={vocab} D={hidden} {dtype} on {device}"
    table = Table(title=title, caption=memory_note(report))
    for h in HEADERS:
        left = h in ("impl", "status")
        table.add_column(h, justify="left" if left else "right", overflow="fold")
    for row in rows(report):
        table.add_row(*row)
    console.print(table)
    for line in notes(report):
        console.print(f"  {line}")
    console.print(
        f"baseline: {report['baseline']}; errors vs {report['reference']}; "
        f"torch {env.get('torch')}; {env.get('gpu') or env.get('cpu')}"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {json_path}")
    if append_docs is not None:
        append_docs.parent.mkdir(parents=True, exist_ok=True)
        with append_docs.open("a", encoding="utf-8") as fh:
            fh.write("\n" + markdown(report, note))
        console.print(f"appended to {append_docs}")


def _check_request(impls: list[str], device: str, timeout: float) -> str:
    """Refuse bad flags before any worker starts (one line, exit 2); return the device."""
    import re

    import torch

    from xent_core import NotAvailableError, validate

    from ..selection import create_kernel

    validate.positive("--timeout", timeout)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        from xent_core import BadParameterError

        raise BadParameterError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NotAvailableError(f"--device {device}: no CUDA device is visible; use --device cpu")
    for spec in impls:
        create_kernel(spec)  # an unknown name or a bad parameter is an error, not a "failed" row
    return device


if __name__ == "__main__":
    bench_app()
