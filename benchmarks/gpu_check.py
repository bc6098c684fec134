"""Linear cross-entropy on a GPU: correctness and forward+backward cost of every kernel, side by side.

Called by ``benchmarks/gpu.sh``; runs on its own too::

    python benchmarks/gpu_check.py --out results.json            # CUDA machine
    python benchmarks/gpu_check.py --dry-run                     # CPU, Triton interpreter, tiny shapes

For each shape (default: Gemma-2-2B, N=8192 D=2304 V=256000, and Llama-3-8B, N=8192 D=4096
V=128256; bf16) it builds one set of inputs, computes an fp32 reference of the mean loss and of both
gradients (token chunk by token chunk; float64 in the dry run), then for each implementation:

- correctness: the largest error of the loss and of d_hidden / d_classifier against the reference,
  relative to the reference's largest entry, checked with the tolerance rule of the engineering
  guide (no larger than naive PyTorch's own error in the same dtype, plus a small slack);
- time: median of forward+backward (CUDA events) after warm-up (the first call compiles and
  autotunes), and of the forward alone;
- memory: ``torch.cuda.max_memory_allocated`` over what was allocated before the call (inputs
  only), after the forward and after the backward; "over grads" subtracts the size of the two
  gradient buffers themselves.

Implementations are created through the registry (``xent_core.kernel(name)``); the peers
(``apple-cce``: package cut-cross-entropy, ``liger``: package liger-kernel), ``naive`` and
``torch-native`` fall back to direct calls when no adapter is registered, and are skipped with the
reason when not importable. The benchmark stops starting new runs when ``--budget-s`` is spent.
Writes every figure to ``--out`` (JSON) and prints a short table last.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "gemma2-2b": (8192, 2304, 256_000),
    "llama3-8b": (8192, 4096, 128_256),
}
DRY_SHAPES = {"tiny-a": (96, 48, 509), "tiny-b": (64, 40, 300)}
IMPLS = (
    "cce-triton",
    "cce-triton-filtered",
    "cce-triton-lean",
    "cce-torch",
    "torch-native",
    "naive",
    "apple-cce",
    "liger",
)
#: the rule's slack, relative to the reference's largest entry
SLACK = {"bfloat16": 8e-3, "float16": 2e-3, "float32": 2e-5}

LossFn = Callable[[Any, Any, Any], Any]


class Unavailable(Exception):
    """An implementation cannot run here; the message says why."""


class Stopped(BaseException):
    """SIGTERM (the caller's timeout): write what was measured, print the table, stop."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped()


@dataclass
class Result:
    shape: str
    impl: str
    status: str = "pending"
    reason: str = ""
    source: str = ""
    time_ms: float | None = None
    time_ms_all: list[float] = field(default_factory=list)
    fwd_ms: float | None = None
    fwd_peak_mib: float | None = None
    peak_mib: float | None = None
    grads_mib: float | None = None
    over_grads_mib: float | None = None
    loss: float | None = None
    loss_err: float | None = None
    dh_err: float | None = None
    dc_err: float | None = None
    correct: bool | None = None


# --------------------------------------------------------------------------- set-up


def make_plugins_importable() -> str:
    """Let ``xent_core`` find the repository's plugins without installing anything.

    When the ``xent`` distribution is not installed (a bare GPU machine), the repository and its
    ``plugins/`` folder go on ``sys.path`` and a temporary ``xent-0.0.0.dist-info`` folder
    declares the ``cce`` entry point, so the registry discovers the plugin as usual.
    """
    for p in (ROOT / "plugins", ROOT):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    try:
        importlib.metadata.distribution("xent")
        return "installed distribution"
    except importlib.metadata.PackageNotFoundError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="xent-gpu-check-"))
    atexit.register(shutil.rmtree, tmp, True)
    info = tmp / "xent-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xent\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[xent]\ncce = xent_cce\n")
    sys.path.insert(0, str(tmp))
    importlib.invalidate_caches()
    return f"entry points from {info}"


def versions(torch: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        out["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        out["sms"] = props.multi_processor_count
        try:
            import subprocess

            out["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except Exception as exc:  # nvidia-smi missing or stuck: not fatal
            out["driver"] = f"unknown ({exc})"
    for pkg in ("cut-cross-entropy", "liger-kernel"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


# --------------------------------------------------------------------------- implementations


def _registry_kernel(name: str, **params: Any) -> Any:
    import xent_core

    try:
        k = xent_core.kernel(name, **params)
    except xent_core.XentError as exc:
        raise Unavailable(f"not in the registry: {exc}") from exc
    ok, why = k.available()
    if not ok:
        raise Unavailable(why)
    return k


def _kernel_loss(k: Any, **opts: Any) -> LossFn:
    return lambda h, c, t: k.linear_cross_entropy(h, c, t, **opts)[0]


def make_impl(name: str) -> tuple[LossFn, str]:
    """``(loss_fn(hidden, classifier, targets) -> mean loss, where it came from)``."""
    import torch
    import torch.nn.functional as F

    if name in ("cce-triton", "cce-triton-filtered", "cce-triton-lean"):
        params = {"accumulate": "input"} if name == "cce-triton-lean" else {}
        opts = {"filter_eps": "auto"} if name != "cce-triton" else {}
        try:
            k = _registry_kernel("cce-triton", **params)
            source = "registry"
        except Unavailable as exc:
            if "not in the registry" not in str(exc):
                raise
            from xent_cce.triton.kernel import CCETritonKernel

            k = CCETritonKernel(**params)
            ok, why = k.available()
            if not ok:
                raise Unavailable(why) from None
            source = "direct import (not registered)"
        return _kernel_loss(k, **opts), source
    if name == "cce-torch":
        return _kernel_loss(_registry_kernel("cce-torch")), "registry"
    if name == "naive":
        return (lambda h, c, t: F.cross_entropy(h @ c.T, t)), "torch: cross_entropy(h @ c.T)"
    if name == "torch-native":
        try:
            return _kernel_loss(_registry_kernel("torch-native")), "registry"
        except Unavailable:
            fn = getattr(F, "linear_cross_entropy", None)
            if fn is None:
                raise Unavailable(
                    f"torch {torch.__version__} has no F.linear_cross_entropy (torch >= 2.13)"
                ) from None
            return (lambda h, c, t: fn(h, c, t)), "torch.nn.functional.linear_cross_entropy"
    if name == "apple-cce":
        try:
            return _kernel_loss(_registry_kernel("apple-cce")), "registry"
        except Unavailable:
            try:
                from cut_cross_entropy import linear_cross_entropy
            except Exception as exc:
                raise Unavailable(f"cut-cross-entropy not importable: {exc}") from None
            return (lambda h, c, t: linear_cross_entropy(h, c, t)), "cut_cross_entropy (impl cce)"
    if name == "liger":
        try:
            return _kernel_loss(_registry_kernel("liger")), "registry"
        except Unavailable:
            try:
                from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
            except Exception as exc:
                raise Unavailable(f"liger-kernel not importable: {exc}") from None
            fused = LigerFusedLinearCrossEntropyLoss()
            return (lambda h, c, t: fused(c, h, t)), "liger_kernel fused linear CE"
    raise Unavailable(f"unknown implementation {name!r}; known: {', '.join(IMPLS)}")


# --------------------------------------------------------------------------- reference


def reference(h: Any, c: Any, t: Any, acc_dtype: Any, chunk: int = 1024) -> tuple[float, Any, Any]:
    """Mean loss and its gradients in ``acc_dtype``, one token chunk of logits at a time."""
    import torch

    n = h.shape[0]
    cf = c.to(acc_dtype)
    dh = torch.empty(h.shape, dtype=acc_dtype, device=h.device)
    dc = torch.zeros(cf.shape, dtype=acc_dtype, device=h.device)
    total = torch.zeros((), dtype=acc_dtype, device=h.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        hs = h[s:e].to(acc_dtype)
        y = hs @ cf.T
        lse = torch.logsumexp(y, dim=-1)
        total += (lse - y.gather(1, t[s:e, None])[:, 0]).sum()
        p = y.sub_(lse[:, None]).exp_()
        p[torch.arange(e - s, device=h.device), t[s:e]] -= 1.0
        p /= n
        dh[s:e] = p @ cf
        dc.addmm_(p.T, hs)
        del y, p
    return (total / n).item(), dh, dc


def rel_err(x: Any, ref: Any) -> float:
    scale = ref.abs().max().item()
    err = 0.0
    for s in range(0, x.shape[0], 8192):  # bounded temporaries
        err = max(err, (x[s : s + 8192].to(ref.dtype) - ref[s : s + 8192]).abs().max().item())
    return err / max(scale, 1e-30)


# --------------------------------------------------------------------------- measuring


class Clock:
    """CUDA events on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, torch: Any, cuda: bool) -> None:
        self.torch, self.cuda = torch, cuda

    def time_ms(self, fn: Callable[[], None]) -> float:
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def run_impl(
    res: Result,
    fn: LossFn,
    h: Any,
    c: Any,
    t: Any,
    ref: tuple[float, Any, Any],
    clock: Clock,
    reps: int,
    warmup: int,
) -> None:
    import torch

    cuda = h.is_cuda

    def clear() -> None:
        h.grad = None
        c.grad = None

    def fwd_bwd() -> None:
        clear()
        fn(h, c, t).backward()

    def fwd() -> None:
        fn(h, c, t)

    # warm-up first: compiling and autotuning (whose benchmarking allocates an L2-flush buffer)
    # must not count in the memory figures
    for _ in range(max(1, warmup)):
        fwd_bwd()
    # memory, and the gradients for the check
    clear()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    loss = fn(h, c, t)
    if cuda:
        torch.cuda.synchronize()
        res.fwd_peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    loss.backward()
    if cuda:
        torch.cuda.synchronize()
        res.peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
        res.grads_mib = (h.numel() * h.element_size() + c.numel() * c.element_size()) / 2**20
        res.over_grads_mib = res.peak_mib - res.grads_mib
    ref_loss, ref_dh, ref_dc = ref
    res.loss = float(loss.item())
    res.loss_err = abs(res.loss - ref_loss)
    res.dh_err = rel_err(h.grad, ref_dh)
    res.dc_err = rel_err(c.grad, ref_dc)
    del loss
    clear()

    res.time_ms_all = [clock.time_ms(fwd_bwd) for _ in range(reps)]
    res.time_ms = statistics.median(res.time_ms_all)
    fwd_times = [clock.time_ms(fwd) for _ in range(max(3, reps // 2))]
    res.fwd_ms = statistics.median(fwd_times)
    clear()


def judge(results: list[Result], dtype_name: str) -> None:
    """The tolerance rule against naive PyTorch's own error (or the slack alone without it)."""
    slack = SLACK[dtype_name]
    naive = next((r for r in results if r.impl == "naive" and r.status == "ok"), None)
    for r in results:
        if r.status != "ok" or r.dh_err is None:
            continue
        if naive is not None and naive.dh_err is not None:
            base = (naive.loss_err or 0.0, naive.dh_err, naive.dc_err or 0.0)
            tol = (1e-3, slack, slack)
        else:
            base, tol = (0.0, 0.0, 0.0), (2e-3, 2 * slack, 2 * slack)
        errs = (r.loss_err or 0.0, r.dh_err, r.dc_err or 0.0)
        r.correct = all(e <= b + s for e, b, s in zip(errs, base, tol))


# --------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shapes", default=",".join(SHAPES), help="names, or N,D,V triples split by ';'"
    )
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(SLACK))
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=330.0, help="stop starting runs after this")
    ap.add_argument("--out", default=None, help="JSON file for every figure")
    ap.add_argument(
        "--tests", default="not run", help="status of the correctness tests (from gpu.sh)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="tiny shapes on the CPU (Triton interpreter)"
    )
    return ap.parse_args(argv)


def shapes_from(arg: str, dry: bool) -> dict[str, tuple[int, int, int]]:
    """``"gemma2-2b,llama3-8b"`` (names) or ``"8192,2304,256000;4096,512,32768"`` (triples)."""
    if dry:
        return dict(DRY_SHAPES)
    out: dict[str, tuple[int, int, int]] = {}
    for item in arg.replace(";", " ").split():
        parts = [p.strip() for p in item.split(",") if p.strip()]
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            n, d, v = (int(p) for p in parts)
            out[f"{n}x{d}x{v}"] = (n, d, v)
            continue
        for name in parts:
            if name not in SHAPES:
                raise SystemExit(f"unknown shape {name!r}; known: {', '.join(SHAPES)} or N,D,V")
            out[name] = SHAPES[name]
    return out


def naive_fits(torch: Any, n: int, v: int, elem: int) -> tuple[bool, str]:
    need = n * v * (3 * elem + 4) + 2**30  # logits, log-softmax, grad, fp32 temporaries
    free, _ = torch.cuda.mem_get_info()
    return need < 0.9 * free, f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    t_start = time.monotonic()
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    where = make_plugins_importable()
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("no CUDA device: use --dry-run to exercise this script on the CPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda" if cuda else "cpu"
    dtype = getattr(torch, args.dtype)
    if args.dry_run and dtype == torch.bfloat16:
        dtype = torch.float16  # the interpreter has no bf16 arithmetic
    dtype_name = str(dtype).removeprefix("torch.")
    meta = versions(torch) | {
        "plugins": where,
        "device": device,
        "dtype": dtype_name,
        "tests": args.tests,
    }
    print("versions:", json.dumps(meta))
    clock = Clock(torch, cuda)
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    all_results: list[Result] = []

    def save() -> None:
        if args.out:
            report = {"meta": meta, "results": [asdict(r) for r in all_results]}
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2))

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for shape_name, (n, d, v) in shapes_from(args.shapes, args.dry_run).items():
            run_shape(shape_name, n, d, v, args, impls, all_results, meta, clock, t_start, save)
    except Stopped:
        meta["stopped"] = "SIGTERM (time limit) before every run finished"
        print("stopped by SIGTERM: writing what was measured", flush=True)
        for r in all_results:
            if r.status == "pending":
                r.status, r.reason = "stopped", "SIGTERM while running"
    save()
    if args.out:
        print(f"full results: {args.out}")
    print_table(all_results, meta)
    bad = [r for r in all_results if r.correct is False or r.status == "error"]
    return 1 if bad else 0


def run_shape(
    shape_name: str,
    n: int,
    d: int,
    v: int,
    args: argparse.Namespace,
    impls: list[str],
    all_results: list[Result],
    meta: dict[str, Any],
    clock: Clock,
    t_start: float,
    save: Callable[[], None],
) -> None:
    """Inputs and reference for one shape, then every implementation in turn."""
    import torch

    cuda, device = clock.cuda, ("cuda" if clock.cuda else "cpu")
    dtype = getattr(torch, meta["dtype"])
    dtype_name = meta["dtype"]
    print(f"== {shape_name}: N={n} D={d} V={v} {dtype_name}", flush=True)
    gen = torch.Generator(device=device).manual_seed(0)
    h = torch.randn(n, d, device=device, generator=gen).to(dtype).requires_grad_()
    c = (torch.randn(v, d, device=device, generator=gen) / math.sqrt(d)).to(dtype).requires_grad_()
    t = torch.randint(0, v, (n,), device=device, generator=gen)
    acc = torch.float32 if cuda else torch.float64
    t0 = time.monotonic()
    ref = reference(h.detach(), c.detach(), t, acc)
    print(f"   reference ({str(acc).removeprefix('torch.')}) in {time.monotonic() - t0:.1f} s")
    shape_results: list[Result] = []
    order = sorted(impls, key=lambda x: x != "naive")  # naive first: the rule needs its error
    for name in order:
        res = Result(shape=shape_name, impl=name)
        shape_results.append(res)
        all_results.append(res)
        if time.monotonic() - t_start > args.budget_s:
            res.status, res.reason = "skipped", "time budget spent"
            continue
        try:
            if name == "naive" and cuda:
                ok, why = naive_fits(torch, n, v, h.element_size())
                if not ok:
                    raise Unavailable(f"would not fit: {why}")
            fn, res.source = make_impl(name)
            t0 = time.monotonic()
            run_impl(res, fn, h, c, t, ref, clock, args.reps, args.warmup)
            res.status = "ok"
            peak = "-" if res.peak_mib is None else f"{res.peak_mib:.1f}"
            print(
                f"   {name:20s} {res.time_ms:9.2f} ms  peak {peak} MiB  err dh {res.dh_err:.2e}"
                f" dc {res.dc_err:.2e}  ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
        except Unavailable as exc:
            res.status, res.reason = "unavailable", str(exc)
            print(f"   {name:20s} unavailable: {exc}")
        except Exception as exc:
            oom = cuda and isinstance(exc, torch.cuda.OutOfMemoryError)
            res.status = "oom" if oom else "error"
            res.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"   {name:20s} {res.status}: {res.reason}")
            if not oom:
                traceback.print_exc()
        finally:
            h.grad = None
            c.grad = None
            if cuda:
                torch.cuda.empty_cache()
            judge(shape_results, dtype_name)
            save()
    del h, c, t, ref
    if cuda:
        torch.cuda.empty_cache()


def print_table(results: list[Result], meta: dict[str, Any]) -> None:
    def f(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    head = (
        f"{'shape':10s} {'impl':20s} {'fwd+bwd ms':>10s} {'x naive':>7s} {'fwd ms':>8s} "
        f"{'peak MiB':>9s} {'over grads':>10s} {'err dh':>8s} {'err dc':>8s} check"
    )
    print()
    print(
        f"{meta.get('gpu', 'CPU (dry run)')} | torch {meta['torch']} | triton {meta['triton']} | "
        f"{meta['dtype']} | tests: {meta['tests']} | {meta['date']}"
    )
    print(head)
    print("-" * len(head))
    for shape in dict.fromkeys(r.shape for r in results):
        rows = [r for r in results if r.shape == shape]
        naive = next((r for r in rows if r.impl == "naive" and r.time_ms), None)
        for r in rows:
            if r.status != "ok":
                print(f"{r.shape:10s} {r.impl:20s} {r.status}: {r.reason[:70]}")
                continue
            ratio = r.time_ms / naive.time_ms if naive and r.time_ms else None
            check = {True: "ok", False: "FAIL", None: "-"}[r.correct]
            print(
                f"{r.shape:10s} {r.impl:20s} {f(r.time_ms, '10.2f')} {f(ratio, '7.2f')} "
                f"{f(r.fwd_ms, '8.2f')} {f(r.peak_mib, '9.1f')} {f(r.over_grads_mib, '10.1f')} "
                f"{f(r.dh_err, '8.1e')} {f(r.dc_err, '8.1e')} {check}"
            )


if __name__ == "__main__":
    sys.exit(main())
