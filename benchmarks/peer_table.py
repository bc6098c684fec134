"""Regenerate the whole "Every loss and estimator against its peer" table of docs/benchmarks.md.

One command runs every section (the suites of ``xent bench losses`` and ``xent bench
estimators``, plus the cost of the input checks) and replaces the text between the
``<!-- peer-table:start -->`` and ``<!-- peer-table:end -->`` markers::

    python benchmarks/peer_table.py --write docs/benchmarks.md

Sections: cross-entropy at N=2048 C=32768 in fp32 and bf16 (plain, 10 % ignored, label
smoothing, class weights); plain cross-entropy at N=8192 C=128256 in bf16 (3 rounds; skipped
with a note when less than 14 GiB is available; fp32 at that shape would need about 21 GiB in
the timing process, which holds both variants' gradients and the peer's log-probabilities);
every loss at N=512 C=8192 fp32; the input checks of the main losses (on - off, over one
``amax`` pass over the logits); the kNN estimators (``knn-entropy``, ``ksg-mi``) at n=20000,
d=2 and d=1; every other registered estimator at its own default size (its peer library where
one is installed, else its formula written plainly in numpy / torch), and the estimators
without a row, if any.
Each case: peak memory of xent and of its peer in a fresh process each, then one process that
times them in ``--repeats`` alternating rounds (process CPU clock) and compares their outputs.

Shorter runs: ``--quick`` (cross-entropy at N=512 C=32768, 3 rounds of 0.6 s, no ``ce-large``),
``--no-compiled`` (skips ``torch.compile``, the slowest part on a cold cache), ``--sections``
(a comma-separated subset of ``ce-fp32,ce-bf16,ce-large,losses,checks,estimators``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from xent_core import benchmarking as B
from xent_core._bench_checks import checks_markdown, run_checks_cost

START, END = "<!-- peer-table:start -->", "<!-- peer-table:end -->"
SECTIONS = ("ce-fp32", "ce-bf16", "ce-large", "losses", "checks", "estimators")
LARGE = {"rows": 8192, "cols": 128256}  # the second shape: a Llama-3 vocabulary
LARGE_NEED_GIB = 14.0  # bf16: inputs, both gradients, the peer's log-probabilities, slack
CE_CASES = [
    "cross-entropy",
    "cross-entropy(ignore 10%)",
    "cross-entropy(label_smoothing)",
    "cross-entropy(weight)",
]
CHECK_CASES = ["cross-entropy", "focal", "kd", "jsd"]


def _env_line(env: dict[str, Any], clock: str, repeats: int) -> str:
    return (
        f"{env['date']}; {env['cpu']} ({env['cores']} cores, 1 torch thread, 1-min load "
        f"{env['load_1min']:.1f}); Python {env['python']}, torch {env['torch']}; "
        f"{repeats} alternating rounds, {clock} clock."
    )


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(B.HEADERS) + " |", "|" + "---|" * len(B.HEADERS)]
    return lines + ["| " + " | ".join(r) + " |" for r in B.table_rows(rows)]


def _available_gib() -> float:
    """``MemAvailable`` of /proc/meminfo in GiB (infinite where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")


def run(args: argparse.Namespace) -> str:
    from xent_losses.bench import unlisted

    quick = args.quick
    big = {"rows": 512 if quick else 2048, "cols": 32768}
    small = {"rows": 512, "cols": 8192}
    common = {"min_time": args.min_time, "repeats": args.repeats, "clock": args.clock}
    out: list[str] = []

    def heading(text: str, repeats: int = args.repeats) -> None:
        out.extend(["", f"### {text}", "", _env_line(B.environment(), args.clock, repeats)])
        out.append("")
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    for dtype in ("fp32", "bf16"):
        if f"ce-{dtype}" in args.sections:
            heading(f"cross-entropy, N={big['rows']} C={big['cols']}, {dtype}")
            rows = B.run_suite(
                "xent_losses.bench", CE_CASES, dtype=dtype, size=big, compiled=False, **common
            )
            out.extend(_table(rows))
    if "ce-large" in args.sections and not quick:
        large_repeats = min(3, args.repeats)
        heading(f"cross-entropy, N={LARGE['rows']} C={LARGE['cols']}, bf16", large_repeats)
        available = _available_gib()
        if available < LARGE_NEED_GIB:
            out.append(f"Skipped: {available:.1f} GiB available, about {LARGE_NEED_GIB} needed.")
        else:
            rows = B.run_suite(
                "xent_losses.bench",
                ["cross-entropy"],
                dtype="bf16",
                size=LARGE,
                compiled=False,
                **{**common, "repeats": large_repeats},
            )
            out.extend(_table(rows))
    if "losses" in args.sections:
        heading(f"every loss, N={small['rows']} C={small['cols']}, fp32, checks off")
        rows = B.run_suite("xent_losses.bench", None, size=small, compiled=args.compiled, **common)
        out.extend(_table(rows))
        listed = "; ".join(f"`{k}` ({v})" for k, v in sorted(unlisted().items()))
        out.extend(["", f"Registered losses without a row: {listed or 'none'}."])
    if "checks" in args.sections:
        heading(f"input checks, N={small['rows']} C={small['cols']}, fp32")
        out.append(
            "xent with checks on and off and one `amax` pass over logits of the same size read from "
            "memory (not cache), timed in "
            "rotation; `extra / one pass` is the checks' cost in reduction passes (median "
            "round, lowest to highest in brackets)."
        )
        out.append("")
        out.extend(
            checks_markdown(run_checks_cost("xent_losses.bench", CHECK_CASES, size=small, **common))
        )
    if "estimators" in args.sections:
        from xent_estimators.bench import KNN, bench_cases
        from xent_estimators.bench import unlisted as unlisted_estimators

        est = {"dtype": "fp64", "checks": True, "compiled": False, **common}
        for dims in (2, 1):
            heading(f"estimators, n=20000, d={dims} per variable")
            rows = B.run_suite(
                "xent_estimators.bench", KNN, size={"rows": 20000, "cols": dims}, **est
            )
            out.extend(_table(rows))
        heading("every other estimator at its own size")
        others = [name for name in bench_cases() if name not in KNN]
        rows = B.run_suite("xent_estimators.bench", others, size=None, **est)
        out.extend(_table(rows))
        sizes = "; ".join(
            f"`{r['component']}` " + " x ".join(f"{v}" for v in r["size"].values()) for r in rows
        )
        out.extend(["", f"Sizes (rows x cols, as each case reads them): {sizes}."])
        listed = "; ".join(f"`{k}` ({v})" for k, v in sorted(unlisted_estimators().items()))
        out.extend(["", f"Registered estimators without a row: {listed or 'none'}."])
    return "\n".join(out).strip() + "\n"


def write(path: Path, text: str, seconds: float, command: str | None = None) -> None:
    """Replace the text between the markers of ``path`` with ``text`` and how it was made."""
    doc = path.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{path}: markers {START} / {END} not found")
    command = command or f"python benchmarks/peer_table.py --write {path}"
    stamp = f"Generated by `{command}` in {seconds / 60:.1f} min.\n\n"
    new = f"{START}\n{stamp}{text}{END}"
    doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: new, doc, flags=re.S)
    path.write_text(doc, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", type=Path, default=None, help="replace the marked part of this file")
    p.add_argument("--sections", default=",".join(SECTIONS), help=",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="N=512 for cross-entropy, 3 short rounds")
    p.add_argument("--min-time", type=float, default=None, help="timed seconds per variant")
    p.add_argument("--repeats", type=int, default=None, help="alternating rounds per case")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=True)
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.min_time = args.min_time if args.min_time is not None else (0.6 if args.quick else 1.5)
    args.repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    t0 = time.monotonic()
    text = run(args)
    seconds = time.monotonic() - t0
    print(text)
    print(f"took {seconds / 60:.1f} min", file=sys.stderr)
    if args.write is not None:
        write(args.write, text, seconds, "python benchmarks/peer_table.py " + " ".join(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
