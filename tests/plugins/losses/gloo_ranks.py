"""Run one function on each rank of a real gloo process group (CPU) and collect the results.

Shared by the ``gather_distributed`` tests. ``body(rank, world)`` must be a module-level function
(the ranks are spawned processes) and return a dict of tensors; a rank's exception comes back as
its traceback, so the test fails with the rank's own error.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(
    rank: int, body: Callable[[int, int], dict[str, Any]], port: int, outdir: str, world: int
) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        result = body(rank, world)
    except Exception:
        result = {"error": traceback.format_exc()}
    finally:
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
        dist.destroy_process_group()
    torch.save(result, Path(outdir) / f"rank{rank}.pt")


def run_ranks(
    body: Callable[[int, int], dict[str, Any]], outdir: Path, world: int = 2
) -> list[dict[str, Any]]:
    """``body``'s result on each of ``world`` ranks, in rank order (asserts none raised)."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(body, _free_port(), str(outdir), world), nprocs=world, join=True)
    res = [torch.load(outdir / f"rank{r}.pt", weights_only=False) for r in range(world)]
    errors = [r["error"] for r in res if "error" in r]
    assert not errors, "\n".join(errors)
    return res
