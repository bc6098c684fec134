"""Interleaved timing for :mod:`xent_core.benchmarking`: several variants in one process.

On a shared machine the load changes from second to second, so two variants timed one after
the other in separate processes can differ by 30 % for no reason of their own. Here the
variants (xent, its peer, optionally ``torch.compile`` of xent) are built in one process and
timed in ``repeats`` rounds, alternating their order each round; each round gives a ratio of
two measurements taken seconds apart, and the reported ratio is the median over rounds, with
the lowest and highest round as its spread. Each measurement is
``torch.utils.benchmark.Timer.timeit`` with the process CPU clock by default (time the process
was actually running, so waiting for a core shared with other jobs is not counted; memory
bandwidth shared with them still is). Memory is measured elsewhere, one fresh process per
variant. The outputs of the warm-up calls are compared here (max relative difference).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def peak_over_floor(
    step: Callable[[], Sequence[Any]], grad_like: Sequence[Any]
) -> tuple[float, Sequence[Any]]:
    """Peak RSS of ``step()`` over the floor of inputs plus gradient-size buffers, and its outputs.

    Valid as the first big allocation of a fresh process (the peak RSS never goes down).
    """
    import gc

    import torch

    gc.collect()
    buffers = [torch.zeros_like(t) for t in grad_like]
    floor = _peak_rss_mb()
    del buffers
    gc.collect()
    outputs = step()
    return _peak_rss_mb() - floor, outputs


def _peak_rss_mb() -> float:
    """Peak resident set so far, MiB (as ``benchmarking.peak_rss_mb``; no import cycle)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


_CHUNK = 1 << 22
COLD_BYTES = 256 * 2**20  # larger than any CPU's last-level cache


def _nbytes(tensor: Any) -> int:
    return max(1, int(tensor.numel()) * int(tensor.element_size()))


def max_rel_diff(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Max over the outputs of ``max|a - b| / max|b|`` (float64, in chunks of 2^22 elements, so
    comparing two large gradients holds no float64 copy of either); NaN if any difference is."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = x.detach().reshape(-1), y.detach().reshape(-1)
        scale = diff = 0.0
        for i in range(0, y.numel(), _CHUNK):
            xc, yc = x[i : i + _CHUNK].double().cpu(), y[i : i + _CHUNK].double().cpu()
            scale = max(scale, float(yc.abs().max()))
            chunk_diff = float((xc - yc).abs().max())
            if math.isnan(chunk_diff):  # max() would drop a NaN
                return math.nan
            diff = max(diff, chunk_diff)
        worst = max(worst, diff / (scale if scale > 0 else 1.0))
    return worst


def _number(fn: Callable[[], Any], budget: float, clock: Callable[[], float]) -> int:
    """Calls per measurement so that one measurement lasts about ``budget`` seconds."""
    t0 = clock()
    fn()
    once = max(clock() - t0, 1e-6)
    return max(1, round(budget / once))


def interleave(
    fns: dict[str, Callable[[], Any]],
    *,
    min_time: float,
    repeats: int,
    clock: str = "cpu",
    threads: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each function, one entry per round, the order alternating per round."""
    from torch.utils.benchmark import Timer

    timer = CLOCKS[clock]
    repeats = max(1, repeats)
    budget = min_time / repeats
    numbers = {k: _number(f, budget, timer) for k, f in fns.items()}
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names if r % 2 == 0 else names[::-1]:
            t = Timer(stmt="f()", globals={"f": fns[k]}, num_threads=threads, timer=timer)
            out[k].append(t.timeit(numbers[k]).mean)
    return out


def summary(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Median per-round ratio ``num / den`` with the lowest and highest round."""
    ratios = [a / b for a, b in zip(times[num], times[den], strict=True) if b > 0]
    if not ratios:
        return {}
    return {"ratio": statistics.median(ratios), "lo": min(ratios), "hi": max(ratios)}


def pair_worker(case: Any, size: dict[str, int], args: Any) -> dict[str, Any]:
    """xent, peer (and compiled xent) of one case in this process, timed in rotation.

    xent is built and run first, so the peak memory of its first call is measured here as in a
    fresh process; the peer's memory needs a process of its own.
    """
    import torch

    import xent_core

    with xent_core.input_checks(args.checks):
        steps = {}
        outputs = {}
        result: dict[str, Any] = {}
        for variant in ("xent", "peer"):
            step, grad_like = case.make(variant, size, args.dtype, args.seed)
            if variant == "xent":  # first in this fresh process: its peak memory is its own
                result["xent_peak_mb"], out = peak_over_floor(step, grad_like)
            else:
                out = step()
            outputs[variant] = [o.detach().clone() for o in out]  # warm-up
            steps[variant] = step
        if args.compiled:
            compiled = torch.compile(steps["xent"], backend="inductor")
            compiled()  # type: ignore[no-untyped-call]  # compile outside the measured rounds
            steps["compiled"] = compiled
        times = interleave(
            steps,
            min_time=args.min_time,
            repeats=args.repeats,
            clock=args.clock,
            threads=args.threads,
        )
    for k, v in times.items():
        result[k] = {"median_s": statistics.median(v), "runs": len(v)}
    result["xent"]["peak_mb"] = result.pop("xent_peak_mb")
    result["time"] = summary(times, "xent", "peer")
    if args.compiled:
        result["compiled_over_eager"] = summary(times, "compiled", "xent")
    result["max_rel_diff"] = max_rel_diff(outputs["xent"], outputs["peer"])
    return result


def checks_worker(case: Any, size: dict[str, int], args: Any) -> dict[str, Any]:
    """xent with input checks off and on, and one ``amax`` pass over the logits, in rotation.

    The cost of the checks is reported as (on - off) per round, over the time of one reduction
    pass over logits of the same size read from memory, not from cache (the issue's budget: at
    most one such pass).
    """
    import torch

    import xent_core

    step, grad_like = case.make("xent", size, args.dtype, args.seed)
    logits = grad_like[0].detach()

    def off() -> Any:
        with xent_core.input_checks(False):
            return step()

    def on() -> Any:
        with xent_core.input_checks(True):
            return step()

    # The checks read the logits from memory, so the reference pass must too: it cycles
    # through copies whose total (at least 256 MiB) is larger than any CPU's last-level
    # cache, and each call reads the copy least recently touched.
    copies = [logits.clone() for _ in range(max(2, -(-COLD_BYTES // _nbytes(logits))))]
    turn = iter(range(1 << 62))

    def one_pass() -> Any:
        return torch.amax(copies[next(turn) % len(copies)], dim=-1)

    for fn in (off, on, one_pass):
        fn()
    times = interleave(
        {"off": off, "on": on, "pass": one_pass},
        min_time=args.min_time,
        repeats=args.repeats,
        clock=args.clock,
        threads=args.threads,
    )
    extra = [a - b for a, b in zip(times["on"], times["off"], strict=True)]
    ratios = [e / p for e, p in zip(extra, times["pass"], strict=True) if p > 0]
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "off_s": med["off"],
        "on_s": med["on"],
        "extra_s": statistics.median(extra),
        "pass_s": med["pass"],
        "extra_over_pass": statistics.median(ratios) if ratios else None,
        "lo": min(ratios) if ratios else None,
        "hi": max(ratios) if ratios else None,
        "rounds": len(extra),
    }
