"""nt-xent with gather_distributed across 2 real gloo processes (CPU).

Each rank holds half of the batch. With gathering, every anchor sees every rank's rows as
negatives, so the mean of the ranks' losses is the single-process loss on the whole batch, and
the gradients (all_gather's backward sums them over ranks) are that loss's gradients scaled by
the number of ranks.
"""

from __future__ import annotations

import socket
import traceback
from pathlib import Path

import pytest
import torch

F64 = torch.float64
WORLD = 2


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    a = torch.randn(6, 5, generator=g, dtype=F64)
    return a, a + 0.4 * torch.randn(6, 5, generator=g, dtype=F64)


def _worker(rank: int, port: int, outdir: str) -> None:
    import torch.distributed as dist
    from xent_losses.nt_xent import NTXentLoss  # not via the registry: a fresh process

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        a, b = _batch()
        half = slice(3 * rank, 3 * rank + 3)
        la = a[half].clone().requires_grad_(True)
        lb = b[half].clone().requires_grad_(True)
        value = NTXentLoss(temperature=0.3, gather_distributed=True)(la, lb)
        value.backward()
        result = {"value": value.detach(), "grad_a": la.grad, "grad_b": lb.grad}
    except Exception:
        result = {"error": traceback.format_exc()}
    finally:
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
        dist.destroy_process_group()
    torch.save(result, Path(outdir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gathered_loss_equals_the_whole_batch_loss(tmp_path):
    import torch.multiprocessing as mp

    import xent_core

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    errors = [r["error"] for r in res if "error" in r]
    assert not errors, "\n".join(errors)
    a, b = _batch()
    a.requires_grad_(True)
    b.requires_grad_(True)
    whole = xent_core.loss("nt-xent", temperature=0.3)(a, b)
    whole.backward()
    mean_of_ranks = sum(float(r["value"]) for r in res) / WORLD
    assert mean_of_ranks == pytest.approx(float(whole.detach()), rel=1e-12)
    grad_a = torch.cat([r["grad_a"] for r in res])
    grad_b = torch.cat([r["grad_b"] for r in res])
    torch.testing.assert_close(grad_a, WORLD * a.grad)
    torch.testing.assert_close(grad_b, WORLD * b.grad)
