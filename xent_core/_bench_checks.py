"""The cost of the input checks, measured against one reduction pass (parent side, no torch).

Each case runs in a fresh ``checks`` worker (:func:`xent_core._bench_pair.checks_worker`): xent
with input checks off, with them on, and one ``amax`` pass over logits of the same size, timed in
rotation; the cost is (on - off) per round over the time of that pass. The pass reads its
logits from memory (it cycles through copies larger than the last-level cache together), as
the checks inside a loss do: a pass over logits still in cache is up to 3x faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import benchmarking

__all__ = ["CHECKS_HEADERS", "checks_markdown", "run_checks_cost"]


def run_checks_cost(
    suite: str,
    names: Sequence[str],
    *,
    dtype: str = "fp32",
    size: dict[str, int] | None = None,
    threads: int = 1,
    min_time: float = 1.0,
    repeats: int = 5,
    clock: str = "cpu",
) -> list[dict[str, Any]]:
    """Per case: xent with checks off and on and one ``amax`` pass, timed in rotation."""
    cases = benchmarking._load_suite(suite)
    rows = []
    for name in names:
        case_size = {**cases[name].size, **(size or {})}
        result = benchmarking.run_case(
            suite,
            name,
            "checks",
            size=case_size,
            dtype=dtype,
            threads=threads,
            min_time=min_time,
            repeats=repeats,
            clock=clock,
        )
        rows.append({"case": name, "size": case_size, **result})
    return rows


CHECKS_HEADERS = (
    "case",
    "checks off ms",
    "checks on ms",
    "extra ms",
    "one amax pass from memory ms",
    "extra / one pass",
)


def checks_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown table lines of :func:`run_checks_cost` rows."""
    lines = ["| " + " | ".join(CHECKS_HEADERS) + " |", "|" + "---|" * len(CHECKS_HEADERS)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error']} |" + " - |" * 4)
            continue
        spread = f" ({benchmarking._fmt(r['lo'], '.2f')} to {benchmarking._fmt(r['hi'], '.2f')})"
        cells = [
            r["case"],
            benchmarking._fmt(1e3 * r["off_s"], ".2f"),
            benchmarking._fmt(1e3 * r["on_s"], ".2f"),
            benchmarking._fmt(1e3 * r["extra_s"], ".2f"),
            benchmarking._fmt(1e3 * r["pass_s"], ".2f"),
            benchmarking._fmt(r["extra_over_pass"], ".2f") + spread,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
