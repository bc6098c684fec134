"""Runs ``xent bench linear-ce``: one fresh subprocess per kernel, a reference check, a summary.

The parent process never runs a kernel itself; it only spawns ``python -m
xent_cce.bench.worker`` for each kernel (so each peak memory is that kernel's alone) and reads
their JSON lines.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BASELINE = "naive"
#: fraction of free memory the naive logits (about 4 N x V fp32 buffers) may use
NAIVE_MEMORY_FRACTION = 0.6


@dataclass
class BenchConfig:
    tokens: int
    vocab: int
    hidden: int
    dtype: str = "fp32"
    device: str = "cpu"
    impls: list[str] = field(default_factory=list)
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    filter_eps: str = "auto"
    timeout_s: float = 1800.0


def default_impls(device: str) -> list[str]:
    """Every registered kernel that says it is available and runs on ``device``'s type."""
    import xent_core

    dev = device.split(":")[0]
    names: list[str] = []
    for spec in xent_core.list_components("kernel"):
        devices = spec.capabilities.get("devices", ("cpu", "cuda"))
        if dev not in devices:
            continue
        try:
            ok = xent_core.kernel(spec.name).available()[0]
        except xent_core.XentError:
            ok = False
        if ok:
            names.append(spec.name)
            if spec.name == "torch-native":
                names.append("torch-native(chunked=True)")
    order = {BASELINE: 0}
    return sorted(names, key=lambda n: (order.get(n, 1), n))


def free_memory_bytes(device: str) -> int | None:
    """Free memory of the device (None when unknown)."""
    if device.startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:
            return None
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def naive_fits(cfg: BenchConfig) -> bool:
    """Whether the naive kernel's (N, V) buffers fit in memory with room to spare."""
    free = free_memory_bytes(cfg.device)
    if free is None:
        return True
    need = 4 * cfg.tokens * cfg.vocab * 4
    return need < NAIVE_MEMORY_FRACTION * free


def environment() -> dict[str, Any]:
    """Machine and versions, for the record."""
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    for dist in ("triton", "cut-cross-entropy", "liger-kernel"):
        try:
            from importlib.metadata import version

            info[dist] = version(dist)
        except Exception:
            continue
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check_impl(impl: str) -> dict[str, Any] | None:
    """A failed or unavailable row for an impl that cannot run here (no process spawned)."""
    import xent_core

    from ..selection import create_kernel

    try:
        ok, reason = create_kernel(impl).available()
    except xent_core.XentError as exc:
        return {"impl": impl, "status": "failed", "reason": str(exc)}
    return None if ok else {"impl": impl, "status": "unavailable", "reason": reason}


def worker_command(cfg: BenchConfig, impl: str, **extra: Any) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "xent_cce.bench.worker",
        "--impl", impl,
        "--tokens", str(cfg.tokens),
        "--vocab", str(cfg.vocab),
        "--hidden", str(cfg.hidden),
        "--dtype", cfg.dtype,
        "--device", cfg.device,
        "--repeats", str(extra.pop("repeats", cfg.repeats)),
        "--warmup", str(extra.pop("warmup", cfg.warmup)),
        "--seed", str(cfg.seed),
        "--filter-eps", cfg.filter_eps,
    ]  # fmt: skip
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value not in (None, False):
            cmd += [flag, str(value)]
    return cmd


def run_worker(
    cmd: list[str],
    impl: str,
    timeout_s: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one worker; return its result dict (a failed one if it crashed or timed out)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        result: dict[str, Any] | None = None
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if msg.get("event") == "progress" and on_progress is not None:
                    on_progress(msg)
                elif msg.get("event") == "result":
                    result = msg
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return {"impl": impl, "status": "failed", "reason": f"timed out after {timeout_s}s"}
        if result is not None:
            return result
        err.seek(0)
        tail = err.read().strip().splitlines()[-3:]
        how = (
            "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
        )
        return {"impl": impl, "status": "failed", "reason": f"worker {how}: {' | '.join(tail)}"}


def run_bench(
    cfg: BenchConfig,
    on_start: Callable[[str, int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every impl of ``cfg`` and return the full report (see :func:`summarise`)."""
    impls = list(cfg.impls) or default_impls(cfg.device)
    with tempfile.TemporaryDirectory(prefix="xent-bench-") as tmp:
        ref_path = str(Path(tmp) / "reference.pt")
        results: list[dict[str, Any]] = []
        reference = None
        use_naive = BASELINE in impls and naive_fits(cfg)
        if not use_naive:
            # float64 reference with the chunked kernel: the naive logits would not fit
            if on_start:
                on_start("reference (cce-torch, float64)", 1)
            ref = run_worker(
                worker_command(cfg, "cce-torch", repeats=1, warmup=0, float64=True, save=ref_path),
                "reference",
                cfg.timeout_s,
                on_progress,
            )
            reference = "cce-torch float64" if ref.get("status") == "ok" else None
        ordered = ([BASELINE] if use_naive else []) + [
            i for i in impls if i != BASELINE or not use_naive
        ]
        for impl in ordered:
            if on_start:
                on_start(impl, cfg.warmup + cfg.repeats)
            is_ref = use_naive and impl == BASELINE
            if impl == BASELINE and not use_naive:
                results.append(
                    {"impl": impl, "status": "skipped", "reason": "its N x V logits would not fit"}
                )
                continue
            precheck = check_impl(impl)
            if precheck is not None:
                results.append(precheck)
                continue
            extra: dict[str, Any] = {"save": ref_path} if is_ref else {}
            if not is_ref and Path(ref_path).exists():
                extra["reference"] = ref_path
            res = run_worker(worker_command(cfg, impl, **extra), impl, cfg.timeout_s, on_progress)
            if is_ref and res.get("status") == "ok":
                reference = f"{BASELINE} ({cfg.dtype})"
            results.append(res)
    return summarise(cfg, results, reference)


def summarise(
    cfg: BenchConfig, results: list[dict[str, Any]], reference: str | None
) -> dict[str, Any]:
    """Add ratios to the baseline (naive when it ran, else the first successful row)."""
    ok = [r for r in results if r.get("status") == "ok"]
    base = next((r for r in ok if r["impl"] == BASELINE), ok[0] if ok else None)
    for r in ok:
        if base is not None:
            r["time_ratio"] = r["median_s"] / base["median_s"] if base["median_s"] else None
            r["mem_ratio"] = r["peak_mb"] / base["peak_mb"] if base["peak_mb"] > 0 else None
    return {
        "config": {
            "tokens": cfg.tokens,
            "vocab": cfg.vocab,
            "hidden": cfg.hidden,
            "dtype": cfg.dtype,
            "device": cfg.device,
            "repeats": cfg.repeats,
            "warmup": cfg.warmup,
            "filter_eps": cfg.filter_eps,
        },
        "baseline": None if base is None else base["impl"],
        "reference": reference,
        "environment": environment(),
        "results": results,
    }


# ---------------------------------------------------------------------------- formatting
def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1e3:.1f} ms"


def rows(report: dict[str, Any]) -> list[list[str]]:
    """Table rows: impl, status, median time, x baseline, peak memory, x baseline, error."""
    out = []
    for r in report["results"]:
        if r.get("status") != "ok":
            out.append([r["impl"], r.get("status", "?"), "-", "-", "-", "-", "-"])
            continue
        out.append(
            [
                r["impl"],
                "ok",
                _seconds(r["median_s"]),
                _fmt(r.get("time_ratio"), ".2f", "x"),
                _fmt(r["peak_mb"], ",.0f", " MB"),
                _fmt(r.get("mem_ratio"), ".3f", "x"),
                _fmt(r.get("max_rel_err"), ".1e"),
            ]
        )
    return out


def notes(report: dict[str, Any]) -> list[str]:
    """``impl: reason`` for every row that did not run."""
    return [
        f"{r['impl']}: {r.get('reason', '')}" for r in report["results"] if r.get("status") != "ok"
    ]


HEADERS = ["impl", "status", "median", "x base", "peak", "x base", "max rel err"]


def memory_note(report: dict[str, Any]) -> str:
    dev = report["config"]["device"]
    if dev.startswith("cuda"):
        return "Peak memory: max_memory_allocated over inputs, minus the gradients' own size"
    return (
        "Peak memory: peak RSS over a floor taken in the same process after creating the "
        "inputs and gradient-sized buffers"
    )


def markdown(report: dict[str, Any], note: str = "") -> str:
    """A Markdown section: heading, setup, versions and the table."""
    c, env = report["config"], report["environment"]
    versions = ", ".join(
        f"{k} {env[k]}"
        for k in ("torch", "triton", "cut-cross-entropy", "liger-kernel")
        if k in env
    )
    machine = env.get("gpu") or f"{env.get('cpu')} ({env.get('cpu_count')} cores)"
    lines = [
        f"### linear-ce: N={c['tokens']}, V={c['vocab']}, D={c['hidden']}, {c['dtype']}, "
        f"{c['device']}",
        "",
        f"{env['date']} on {machine}; Python {env['python']}, {versions}. "
        f"{c['repeats']} timed forward+backward runs after {c['warmup']} warm-up, median; "
        f"filter_eps={c['filter_eps']}; each kernel in a fresh process. "
        f"Baseline: {report['baseline']}; errors relative to {report['reference']}. "
        f"{memory_note(report)}.",
    ]
    if note:
        lines += ["", note]
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(report)
    ]
    skipped = notes(report)
    if skipped:
        lines += ["", *(f"- {line}" for line in skipped)]
    return "\n".join(lines) + "\n"
