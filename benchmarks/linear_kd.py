"""linear-kd (chunked, fused) vs materialised logits + kd, forward + backward on the CPU.

Each variant runs in a fresh subprocess, so its peak resident memory is its own: the peak RSS
(``resource.getrusage``) after the first forward+backward minus the peak after the inputs were
built (the "floor"). Time is the median of ``--repeats`` forward+backward passes after that.

Variants:

- ``linear-kd``: ``xent_core.loss("linear-kd")`` on hidden states and classifiers.
- ``materialised+kd``: ``h W^T`` and ``h_t W_t^T`` (teacher under no_grad), then ``kd``.
- ``materialised+torch``: the same logits, then PyTorch's own
  ``T^2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction="batchmean")``.

Usage::

    python benchmarks/linear_kd.py                       # N=2048, D=512, V=32768
    python benchmarks/linear_kd.py --json out.json --markdown

The CPU may be shared with other jobs: compare ratios from one side-by-side run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("linear-kd", "materialised+kd", "materialised+torch")
OTHER_VARIANTS = ("linear-jsd",)  # --variants linear-jsd: the fused generalized JSD


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _hwm_mib() -> float:
    """Peak RSS since the last reset (``VmHWM``), else the process's peak."""
    try:
        with open("/proc/self/status") as fh:
            return next(float(ln.split()[1]) / 1024.0 for ln in fh if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return _peak_mib()


def _reset_floor() -> float:
    """Reset the peak RSS to the current RSS where Linux allows it (``clear_refs``), so that
    temporaries of building the inputs do not raise the floor; returns the floor."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        with open("/proc/self/status") as fh:
            return next(float(ln.split()[1]) / 1024.0 for ln in fh if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return _peak_mib()


def child(args: argparse.Namespace) -> dict:
    import torch

    import xent_core

    torch.manual_seed(0)
    n, d, v, temp = args.n, args.d, args.v, args.temperature
    hidden = (torch.randn(n, d) * 0.5).requires_grad_()
    classifier = (torch.randn(v, d) * d**-0.5).requires_grad_()
    teacher_hidden = torch.randn(n, d) * 0.5
    teacher_classifier = torch.randn(v, d) * d**-0.5
    targets = torch.randint(0, v, (n,))

    chunk = None if args.chunk_size == "auto" else int(args.chunk_size)
    if args.variant in ("linear-kd", "linear-jsd"):
        loss_fn = xent_core.loss(args.variant, temperature=temp, chunk_size=chunk)

        def step() -> torch.Tensor:
            return loss_fn(hidden, classifier, teacher_hidden, teacher_classifier, targets=targets)

    elif args.variant == "materialised+kd":
        kd = xent_core.loss("kd", temperature=temp)

        def step() -> torch.Tensor:
            logits = hidden @ classifier.T
            with torch.no_grad():
                teacher_logits = teacher_hidden @ teacher_classifier.T
            return kd(logits, teacher_logits, targets=targets)

    else:
        import torch.nn.functional as F

        def step() -> torch.Tensor:
            logits = hidden @ classifier.T
            with torch.no_grad():
                teacher_logp = torch.log_softmax(teacher_hidden @ teacher_classifier.T / temp, -1)
            student_logp = torch.log_softmax(logits / temp, -1)
            kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="batchmean")
            return temp**2 * kl

    floor = _reset_floor()
    t0 = time.perf_counter()
    loss = step()
    loss.backward()
    first = time.perf_counter() - t0
    peak = _hwm_mib()
    value = float(loss.detach())
    grad_norm = float(hidden.grad.norm()) + float(classifier.grad.norm())
    times = []
    for _ in range(args.repeats):
        hidden.grad = None
        classifier.grad = None
        t0 = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - t0)
    return {
        "variant": args.variant,
        "floor_mib": floor,
        "peak_mib": peak,
        "extra_mib": peak - floor,
        "first_s": first,
        "median_s": statistics.median(times),
        "times_s": times,
        "loss": value,
        "grad_norm": grad_norm,
        "threads": torch.get_num_threads(),
    }


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        variant,
        *("--n", str(args.n), "--d", str(args.d), "--v", str(args.v)),
        *("--temperature", str(args.temperature), "--repeats", str(args.repeats)),
        *("--chunk-size", str(args.chunk_size)),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    import torch

    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()}",
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_avg_1m": os.getloadavg()[0],
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(args: argparse.Namespace, env: dict, rows: list[dict]) -> str:
    base = {r["variant"]: r for r in rows}["materialised+kd"]
    lines = [
        f"N={args.n}, D={args.d}, V={args.v}, T={args.temperature}, fp32, forward+backward, "
        f"chunk_size={args.chunk_size}, median of {args.repeats}; {env['date']}, {env['cpu']} "
        f"({env['machine']}), Python {env['python']}, torch {env['torch']}, "
        f"1-min load average {env['load_avg_1m']:.1f} at the start (CPU shared with other jobs).",
        "",
        "| variant | peak RSS over inputs (MiB) | memory vs materialised+kd | median time (s) "
        "| time vs materialised+kd | loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['extra_mib']:.0f} | {r['extra_mib'] / base['extra_mib']:.3f} "
            f"| {r['median_s']:.3f} | {r['median_s'] / base['median_s']:.2f} | {r['loss']:.6f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--v", type=int, default=32768)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--chunk-size", default="auto", help="tokens per block, or auto (V-aware)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", help="write full results here")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variant = args.child
        print(json.dumps(child(args)))
        return
    env = environment()
    rows = [run_variant(args, v) for v in args.variants.split(",")]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "env": env, "rows": rows}, fh, indent=2)
    print(f"{'variant':<20} {'extra MiB':>10} {'median s':>9} {'loss':>12} {'grad norm':>12}")
    for r in rows:
        print(
            f"{r['variant']:<20} {r['extra_mib']:>10.0f} {r['median_s']:>9.3f} "
            f"{r['loss']:>12.6f} {r['grad_norm']:>12.4f}"
        )
    if args.markdown:
        print()
        print(markdown(args, env, rows))


if __name__ == "__main__":
    main()
