"""mmcr with gather_distributed across 2 real gloo processes (CPU).

Each rank holds half of the samples. The gathered centroid matrix is the whole batch's and the
local term a mean over each rank's own (equal) half, so the mean of the ranks' losses is the
single-process loss on the whole batch, and the gradients (all_gather's backward sums them over
ranks) are that loss's gradients scaled by the number of ranks.
"""

from __future__ import annotations

import socket
import traceback
from pathlib import Path

import pytest
import torch

F64 = torch.float64
WORLD = 2


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randn(12, 4, generator=g, dtype=F64)  # 6 samples x 2 views, sample-major


def _worker(rank: int, port: int, outdir: str) -> None:
    import torch.distributed as dist
    from xent_losses.mmcr import MMCRLoss  # not via the registry: a fresh process

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        z = _batch()[6 * rank : 6 * rank + 6].clone().requires_grad_(True)
        value = MMCRLoss(lmbda=0.1, gather_distributed=True)(z)
        value.backward()
        result = {"value": value.detach(), "grad": z.grad}
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
def test_every_rank_gets_the_whole_batch_loss(tmp_path):
    import torch.multiprocessing as mp

    import xent_core

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    errors = [r["error"] for r in res if "error" in r]
    assert not errors, "\n".join(errors)
    z = _batch().requires_grad_(True)
    whole = xent_core.loss("mmcr", lmbda=0.1)(z)
    whole.backward()
    mean_of_ranks = sum(float(r["value"]) for r in res) / WORLD
    assert mean_of_ranks == pytest.approx(float(whole.detach()), rel=1e-12)
    torch.testing.assert_close(torch.cat([r["grad"] for r in res]), WORLD * z.grad)
