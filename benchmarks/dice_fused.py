"""`dice` before vs after vs the naive formula, side by side in one process (CPU clock).

"before" is an older ``plugins/xent_losses/dice.py`` loaded from a file (for instance the
commit before the chunked Function: ``git show 1027dd8:plugins/xent_losses/dice.py >
/tmp/dice_before.py``); "after" is the installed ``dice``; "naive" is the formula of
``xent bench losses`` (softmax, ``(1 - p)^alpha p``, one-hot, ratio, sum). Forward + backward,
input checks off, one torch thread, the three alternating for ``--rounds`` rounds; the best
round of each is printed in milliseconds and as a ratio to the naive formula.

    python benchmarks/dice_fused.py --before /tmp/dice_before.py --sizes 512x8192,2048x8192
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from functools import partial

import torch
from xent_losses.bench import _dice
from xent_losses.dice import dice_loss

import xent_core


def _load_before(path: str) -> Callable[..., torch.Tensor]:
    spec = importlib.util.spec_from_file_location("xent_losses._dice_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dice_loss  # type: ignore[no-any-return]


def _time_size(
    n: int, c: int, before: Callable[..., torch.Tensor] | None, rounds: int, reps: int
) -> str:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=gen)
    y = torch.randint(0, c, (n,), generator=gen)
    fns: dict[str, Callable[..., torch.Tensor]] = {}
    if before is not None:
        fns["before"] = before
    fns["after"] = dice_loss
    fns["naive"] = partial(_dice, torch)
    best = dict.fromkeys(fns, float("inf"))

    def call(f: Callable[..., torch.Tensor]) -> None:
        v = x.clone().requires_grad_()
        f(v, y).backward()

    for f in fns.values():
        call(f)  # warm-up
    for _ in range(rounds):
        for name, f in fns.items():
            start = time.process_time()
            for _ in range(reps):
                call(f)
            best[name] = min(best[name], (time.process_time() - start) / reps)
    naive = best["naive"]
    cells = [f"{k} {v * 1e3:.1f} ms ({v / naive:.2f}x)" for k, v in best.items()]
    return f"{n} x {c} fp32: " + ", ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="path of an older dice.py (optional)")
    parser.add_argument("--sizes", default="512x8192,2048x8192")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3, help="calls per timed round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    xent_core.input_checks(False)
    before = _load_before(args.before) if args.before else None
    for size in args.sizes.split(","):
        n, c = (int(v) for v in size.split("x"))
        print(_time_size(n, c, before, args.rounds, args.reps), flush=True)


if __name__ == "__main__":
    main()
