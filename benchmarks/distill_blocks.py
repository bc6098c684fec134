"""The fused distillation row blocks before and after a change, against the peer formula.

Times forward + backward of ``tvd``, ``kd`` (T = 2), ``reverse-kl`` and ``jsd`` (beta = 0.5):
xent with an older ``plugins/xent_distill/_fused.py`` (``--before``, e.g. extracted with
``git show COMMIT:plugins/xent_distill/_fused.py > /tmp/fused_before.py``), xent as checked out,
and the peer (``0.5 * |softmax(s) - softmax(t)|.sum(-1).mean()``, ``T^2 * F.kl_div``, the
swapped ``F.kl_div``, the generalized JSD as TRL writes it). One process, rounds alternating in
order, CPU clock (``time.process_time``), one intra-op thread, input checks off; the median over
rounds of the mean over ``--reps`` steps is printed. ``--memory`` instead runs every (loss,
variant) in a fresh process and prints the peak RSS of one step over the RSS once the inputs
exist (Linux ``clear_refs``).

Usage::

    python benchmarks/distill_blocks.py --before /tmp/fused_before.py [--rows 512 --cols 8192]
    python benchmarks/distill_blocks.py --before /tmp/fused_before.py --memory
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import xent_core

PARAMS: dict[str, dict[str, float]] = {"kd": {"temperature": 2.0}, "jsd": {"beta": 0.5}}
VARIANTS = ("before", "after", "peer")


def _peer(name: str, x: torch.Tensor, t: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The peer formula of ``xent bench losses`` for this loss (same parameters as PARAMS)."""
    from xent_losses import bench

    build = {"tvd": bench._tvd, "kd": bench._kd, "reverse-kl": bench._reverse_kl}
    return build.get(name, bench._jsd_trl)({"x": x, "teacher": t})


def _variants(
    name: str, before: Any, x: torch.Tensor, t: torch.Tensor
) -> dict[str, Callable[[], torch.Tensor]]:
    import xent_distill._divergence as D

    after_rows = D.divergence_rows
    loss = xent_core.loss(name, **PARAMS.get(name, {}))

    def xent(rows: Any) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            D.divergence_rows = rows
            try:
                return loss(logits=x, teacher_logits=t)
            finally:
                D.divergence_rows = after_rows

        return fn

    return {
        "before": xent(before.divergence_rows),
        "after": xent(after_rows),
        "peer": _peer(name, x, t),
    }


def _load_before(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("xent_distill._fused_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _inputs(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(rows, cols, generator=g) * 2).requires_grad_()
    return x, torch.randn(rows, cols, generator=g) * 2


def _step(x: torch.Tensor, fn: Callable[[], torch.Tensor]) -> None:
    x.grad = None
    with xent_core.input_checks(False):
        fn().backward()


def _rss(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    raise RuntimeError(field)


def _child(args: argparse.Namespace) -> None:
    name, variant = args.child.split(":")
    x, t = _inputs(args.rows, args.cols)
    fn = _variants(name, _load_before(args.before), x, t)[variant]
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _rss("VmRSS")
    _step(x, fn)
    print(f"{_rss('VmHWM') - base:.1f}")


def _timing(args: argparse.Namespace) -> None:
    before = _load_before(args.before)
    x, t = _inputs(args.rows, args.cols)
    print(
        f"N={args.rows} C={args.cols} fp32, 1 thread, {args.rounds} rounds x {args.reps} reps, "
        "CPU ms per forward+backward (median over rounds)"
    )
    for name in args.losses.split(","):
        fns = _variants(name, before, x, t)
        grads = {}
        for k, f in fns.items():
            _step(x, f)
            assert x.grad is not None
            grads[k] = x.grad.clone()
        diff = (grads["after"] - grads["before"]).abs().max().item()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(args.rounds):
            for k in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                _step(x, fns[k])
                c0 = time.process_time()
                for _ in range(args.reps):
                    _step(x, fns[k])
                times[k].append((time.process_time() - c0) / args.reps * 1e3)
        m = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{name:11s} before {m['before']:8.1f}  after {m['after']:8.1f}  "
            f"peer {m['peer']:8.1f}  before/peer {m['before'] / m['peer']:.2f}  "
            f"after/peer {m['after'] / m['peer']:.2f}  after/before "
            f"{m['after'] / m['before']:.2f}  max |grad after - before| {diff:.1e}"
        )


def _memory(args: argparse.Namespace) -> None:
    print(f"N={args.rows} C={args.cols} fp32, peak MiB of one step over the inputs' RSS")
    for name in args.losses.split(","):
        peak = {}
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--before", args.before, "--child", f"{name}:{v}"]
            cmd += ["--rows", str(args.rows), "--cols", str(args.cols)]
            peak[v] = float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"{name:11s} before {peak['before']:7.0f}  after {peak['after']:7.0f}  "
            f"peer {peak['peer']:7.0f}  before/peer {peak['before'] / peak['peer']:.2f}  "
            f"after/peer {peak['after'] / peak['peer']:.2f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="an older plugins/xent_distill/_fused.py")
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--cols", type=int, default=8192)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--losses", default="tvd,kd,reverse-kl,jsd")
    p.add_argument("--memory", action="store_true", help="peak RSS per variant, fresh processes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.child:
        _child(args)
    elif args.memory:
        _memory(args)
    else:
        _timing(args)


if __name__ == "__main__":
    main()
