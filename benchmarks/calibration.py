"""ECE benchmark: xent ``ece`` vs torchmetrics ``multiclass_calibration_error``, same inputs.

    python benchmarks/calibration.py                      # 1e6 predictions x 1000 classes
    python benchmarks/calibration.py --rows 100000 --classes 100 --repeats 5

The probabilities are float32 (N, C), built in place (about 4 GB at the default size; peak
memory is about twice that while torchmetrics runs its range check). Both sides get the same
tensor; times are medians of ``--repeats`` calls after one warm-up, run alternately in one
process. Prints a markdown table with the values (they must agree) and the time ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    import torch
    import torchmetrics
    from torchmetrics.functional.classification import multiclass_calibration_error

    import xent_core

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    probs = torch.empty(args.rows, args.classes)
    step = max(1, (1 << 24) // args.classes)
    for start in range(0, args.rows, step):  # softmax of scaled normals, chunk by chunk
        block = torch.randn(min(step, args.rows - start), args.classes, generator=g) * 3.0
        probs[start : start + len(block)] = torch.softmax(block, dim=1)
    targets = torch.randint(0, args.classes, (args.rows,), generator=g)
    top = probs.argmax(dim=1)
    keep = torch.rand(args.rows, generator=g) < 0.5  # half the labels follow the argmax
    targets = torch.where(keep, top, targets)

    ece = xent_core.estimator("ece", n_bins=args.bins)
    t_xent, v_xent = timed(lambda: ece(probs, targets), args.repeats)
    t_tm, v_tm = timed(
        lambda: float(
            multiclass_calibration_error(
                probs, targets, num_classes=args.classes, n_bins=args.bins, norm="l1"
            )
        ),
        args.repeats,
    )
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"torchmetrics {torchmetrics.__version__}, {args.threads} threads, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print("\n| N x C | xent ece (s) | torchmetrics (s) | ratio | xent value | torchmetrics value |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.rows:.0e} x {args.classes} | {t_xent:.3f} | {t_tm:.3f} | "
        f"{t_xent / t_tm:.2f}x | {v_xent:.9f} | {v_tm:.9f} |"
    )


if __name__ == "__main__":
    main()
