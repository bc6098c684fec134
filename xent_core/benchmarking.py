"""Generic side-by-side benchmarks: each variant in a fresh process, one table of ratios.

A *suite* is a module with a function ``bench_cases() -> dict[str, BenchCase]``. Each case
names a component, its peer (or ``"no peer"`` with the naive formula as baseline) and a
``make(variant, size, dtype, seed)`` factory returning ``(step, grad_like)``: ``step()`` runs
one measured call (forward and backward for a loss) and returns the tensors to compare
(value, gradients); ``grad_like`` lists tensors the size of the gradients, allocated before the
region so that the memory figure is what the variant needs beyond its inputs and gradients.

The worker (``python -m xent_core.benchmarking --suite MOD --case NAME --variant V ...``) runs in
a fresh process: it builds the inputs, records the peak resident set (``getrusage``) after
allocating and freeing the gradient-size buffers, runs ``step`` once (warm-up; its peak over
that floor is the memory figure). Times come from one more process per case, the ``pair``
variant (:mod:`xent_core._bench_pair`): xent, its peer and optionally ``torch.compile`` of
xent, built side by side and timed in alternating rounds with ``torch.utils.benchmark.Timer``
(process CPU clock by default), so a load change on a shared machine hits both; it also
compares their outputs. The ``checks`` variant times xent with input checks off and on against
one ``amax`` pass over the logits. torch is imported only in the workers; this module imports
nothing heavy at import time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BenchCase",
    "environment",
    "markdown",
    "peak_rss_mb",
    "run_and_print",
    "run_case",
    "run_suite",
]

VARIANTS = ("xent", "peer", "compiled", "pair", "checks")


@dataclass
class BenchCase:
    """One row of a benchmark table: a component against its peer."""

    component: str
    peer: str
    make: Callable[[str, dict[str, int], str, int], tuple[Callable[[], Sequence[Any]], list[Any]]]
    size: dict[str, int] = field(default_factory=dict)
    compiled: bool = False
    """Also time ``torch.compile`` (inductor) of the xent variant."""


def peak_rss_mb() -> float:
    """Peak resident set of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def environment() -> dict[str, Any]:
    """Machine, date and versions for the report."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_1min": load,
    }


def _load_suite(module: str) -> dict[str, BenchCase]:
    return importlib.import_module(module).bench_cases()  # type: ignore[no-any-return]


def _worker(args: argparse.Namespace) -> dict[str, Any]:

    import torch
    from torch.utils.benchmark import Timer

    import xent_core

    torch.set_num_threads(args.threads)
    case = _load_suite(args.suite)[args.case]
    size = json.loads(args.size)
    if args.variant in ("pair", "checks"):
        from ._bench_pair import checks_worker, pair_worker

        work = pair_worker if args.variant == "pair" else checks_worker
        return work(case, size, args)
    make_variant = "xent" if args.variant == "compiled" else args.variant
    with xent_core.input_checks(args.checks):
        step, grad_like = case.make(make_variant, size, args.dtype, args.seed)
        if args.variant == "compiled":
            step = torch.compile(step, backend="inductor")
            step()  # compile outside the measured region (its memory is the compiler's)
        from ._bench_pair import peak_over_floor

        peak, outputs = peak_over_floor(step, grad_like)
        result: dict[str, Any] = {"peak_mb": peak}
        if args.min_time > 0:
            timer = Timer(stmt="step()", globals={"step": step}, num_threads=args.threads)
            measurement = timer.blocked_autorange(min_run_time=args.min_time)
            result.update(median_s=measurement.median, runs=len(measurement.times))
    if args.save:
        torch.save([o.detach().double().cpu() for o in outputs], args.save)
    return result


def worker_env() -> dict[str, str]:
    """The workers' environment: glibc's ``malloc`` with a fixed mmap threshold (64 KiB).

    By default glibc raises the threshold after the first large ``free``, so whether a
    variant's (N, C) buffers come back from the heap or page-fault in fresh memory on every
    call depends on the order of earlier allocations in the process: measured 0.35x and 3.2x
    for the same two calls (label smoothing, 512 x 8192). Fixed, every large buffer is fresh
    memory for every variant, and freed memory leaves the resident set at once (exact peaks).
    ``MALLOC_MMAP_THRESHOLD_`` set by the caller wins.
    """
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    return env


def run_case(
    suite: str,
    name: str,
    variant: str,
    *,
    size: dict[str, int],
    dtype: str,
    seed: int = 0,
    threads: int = 1,
    min_time: float = 1.0,
    checks: bool = False,
    save: str | None = None,
    timeout: float = 600.0,
    repeats: int = 5,
    clock: str = "cpu",
    compiled: bool = False,
) -> dict[str, Any]:
    """Run one variant in a fresh process; return its result (or ``{"error": ...}``).

    ``repeats``, ``clock`` and ``compiled`` apply to the ``pair`` and ``checks`` variants.
    """
    cmd = [
        sys.executable,
        "-m",
        "xent_core.benchmarking",
        "--suite",
        suite,
        "--case",
        name,
        "--variant",
        variant,
        "--size",
        json.dumps(size),
        "--dtype",
        dtype,
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--min-time",
        str(min_time),
        "--repeats",
        str(repeats),
        "--clock",
        clock,
    ]
    if compiled:
        cmd.append("--compiled")
    if checks:
        cmd.append("--checks")
    if save:
        cmd += ["--save", save]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, env=worker_env()
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail}


def run_suite(
    suite: str,
    names: Sequence[str] | None = None,
    *,
    dtype: str = "fp32",
    size: dict[str, int] | None = None,
    threads: int = 1,
    min_time: float = 1.0,
    checks: bool = False,
    compiled: bool = True,
    repeats: int = 5,
    clock: str = "cpu",
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every case (or those in ``names``): one row each.

    Two fresh processes per case: the peak memory of the peer, then the ``pair`` process that
    measures the peak memory of xent (its first call there) and times xent, the peer (and ``torch.compile`` of xent where the case
    asks for it) in ``repeats`` alternating rounds of about ``min_time / repeats`` seconds each
    and compares their outputs. This parent process never imports torch: on Linux a child's
    peak RSS starts at its parent's (``ru_maxrss`` survives ``exec``), so a big parent would
    hide the workers' peaks.
    """
    cases = _load_suite(suite)
    common: dict[str, Any] = {"dtype": dtype, "threads": threads, "checks": checks}
    rows = []
    for name in names or list(cases):
        case = cases[name]
        case_size = {**case.size, **(size or {})}
        row: dict[str, Any] = {"case": name, "component": case.component, "peer_name": case.peer}
        row["size"] = case_size
        row["peer"] = run_case(suite, name, "peer", size=case_size, min_time=0, **common)
        row["xent"] = {}
        with_compiled = compiled and case.compiled
        timed = run_case(
            suite,
            name,
            "pair",
            size=case_size,
            min_time=min_time,
            repeats=repeats,
            clock=clock,
            compiled=with_compiled,
            **common,
        )
        if "error" in timed:
            row["xent"]["error"] = timed["error"]
        else:
            for variant in ("xent", "peer", "compiled"):
                if variant in timed:
                    row.setdefault(variant, {}).update(timed[variant])
            row["max_rel_diff"] = timed.get("max_rel_diff")
            row["time_ratio"] = timed["time"].get("ratio")
            row["time_ratio_range"] = (timed["time"].get("lo"), timed["time"].get("hi"))
            if with_compiled:
                row["compiled_over_eager"] = timed["compiled_over_eager"].get("ratio")
        x, p = row["xent"], row["peer"]
        if "peak_mb" in x and "peak_mb" in p:
            row["memory_ratio"] = x["peak_mb"] / p["peak_mb"] if p["peak_mb"] > 0 else None
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


HEADERS = (
    "component",
    "peer",
    "time ratio",
    "memory ratio",
    "max rel diff",
    "xent ms",
    "peer ms",
    "xent MiB",
    "peer MiB",
    "compiled/eager",
)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _spread(lo_hi: Any) -> str:
    if not lo_hi or None in lo_hi:
        return ""
    return f" ({lo_hi[0]:.2f}-{lo_hi[1]:.2f})"


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The report's rows as strings, in :data:`HEADERS` order."""
    out = []
    for r in rows:
        x, p = r.get("xent", {}), r.get("peer", {})
        error = x.get("error") or p.get("error")
        out.append(
            [
                r["case"],
                r["peer_name"] if not error else f"{r['peer_name']} (failed: {error})",
                _fmt(r.get("time_ratio"), ".2f") + _spread(r.get("time_ratio_range")),
                _fmt(r.get("memory_ratio"), ".2f"),
                _fmt(r.get("max_rel_diff"), ".1e"),
                _fmt(x.get("median_s") and 1e3 * x["median_s"], ".1f"),
                _fmt(p.get("median_s") and 1e3 * p["median_s"], ".1f"),
                _fmt(x.get("peak_mb"), ".0f"),
                _fmt(p.get("peak_mb"), ".0f"),
                _fmt(r.get("compiled_over_eager"), ".2f"),
            ]
        )
    return out


def markdown(
    title: str,
    rows: Sequence[dict[str, Any]],
    env: dict[str, Any],
    note: str = "",
    unlisted: dict[str, str] | None = None,
) -> str:
    """A Markdown section: heading, environment line, note, table."""
    lines = [f"## {title}", ""]
    lines.append(
        f"{env['date']}; {env['cpu']} ({env['cores']} cores, {env['threads']} torch threads, "
        f"1-min load {env['load_1min']:.1f}); Python {env['python']}, torch {env['torch']}."
    )
    if note:
        lines += ["", note]
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(rows)]
    if unlisted:
        listed = "; ".join(f"`{k}` ({v})" for k, v in sorted(unlisted.items()))
        lines += ["", f"Registered components without a row: {listed}."]
    return "\n".join(lines) + "\n"


def unlisted_components(
    kind: str, cases: Mapping[str, BenchCase], reasons: Mapping[str, str]
) -> dict[str, str]:
    """Every registered component of ``kind`` (any plugin) without a case in ``cases``, with
    its reason from ``reasons`` (default: no case yet), so none is silently missing."""
    import xent_core

    covered = {c.component for c in cases.values()}
    return {
        spec.name: reasons.get(spec.name, "no case yet: not benchmarked")
        for spec in xent_core.list_components(kind)
        if spec.name not in covered
    }


def run_and_print(
    suite: str,
    names: list[str] | None,
    title: str,
    *,
    json_path: Any,
    append_docs: Any,
    note: str,
    unlisted: dict[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Run a suite, print the table, optionally write JSON and a Markdown section.

    ``unlisted`` maps registered components that have no row to the reason, printed under the
    table so none is silently missing.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console()
    with console.status("running...") as status:

        def on_row(row: dict[str, Any]) -> None:
            status.update(f"done: {row['case']}")

        rows = run_suite(suite, names, on_row=on_row, **kwargs)
    env = environment()
    env["threads"] = kwargs.get("threads", env["threads"])  # the workers' setting
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("component", "peer") else "right")
    for r in table_rows(rows):
        table.add_row(*r)
    console.print(table)
    console.print(
        f"ratios are xent / peer (time: median over {kwargs.get('repeats', 5)} alternating "
        f"rounds in one process, {kwargs.get('clock', 'cpu')} clock, torch.utils.benchmark.Timer, "
        f"lowest-highest round in brackets; memory: peak RSS over inputs and gradients, fresh "
        f"process each); torch {env['torch']}, {env['threads']} thread(s), "
        f"1-min load {env['load_1min']:.1f}"
    )
    for comp, why in sorted((unlisted or {}).items()):
        console.print(f"  no row: {comp} ({why})")
    if json_path is not None:
        json_path.write_text(
            json.dumps({"environment": env, "rows": rows, "unlisted": unlisted or {}}, indent=2)
            + "\n"
        )
    if append_docs is not None:
        with append_docs.open("a", encoding="utf-8") as fh:
            fh.write("\n" + markdown(title, rows, env, note, unlisted))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run one benchmark variant (a fresh process).")
    p.add_argument("--suite", required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--variant", choices=VARIANTS, required=True)
    p.add_argument("--size", default="{}")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=5, help="rounds of the pair/checks variants")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--compiled", action="store_true", help="pair: also torch.compile xent")
    p.add_argument("--checks", action="store_true", help="input checks on (default off)")
    p.add_argument("--save", default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    try:
        result = _worker(args)
    except Exception as exc:  # reported as a failed row, not a traceback
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
