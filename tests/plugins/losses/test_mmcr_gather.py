"""mmcr with gather_distributed across 2 real gloo processes (CPU).

Each rank holds half of the samples. The gathered centroid matrix is the whole batch's and the
local term a mean over each rank's own (equal) half, so the mean of the ranks' losses is the
single-process loss on the whole batch, and the gradients (all_gather's backward sums them over
ranks) are that loss's gradients scaled by the number of ranks.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from gloo_ranks import run_ranks

F64 = torch.float64


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randn(12, 4, generator=g, dtype=F64)  # 6 samples x 2 views, sample-major


def _rank(rank: int, world: int) -> dict[str, Any]:
    from xent_losses.mmcr import MMCRLoss  # not via the registry: a fresh process

    z = _batch()[6 * rank : 6 * rank + 6].clone().requires_grad_(True)
    value = MMCRLoss(lmbda=0.1, gather_distributed=True)(z)
    value.backward()
    return {"value": value.detach(), "grad": z.grad}


@pytest.mark.slow
def test_every_rank_gets_the_whole_batch_loss(tmp_path):
    import xent_core

    res = run_ranks(_rank, tmp_path)
    z = _batch().requires_grad_(True)
    whole = xent_core.loss("mmcr", lmbda=0.1)(z)
    whole.backward()
    mean_of_ranks = sum(float(r["value"]) for r in res) / len(res)
    assert mean_of_ranks == pytest.approx(float(whole.detach()), rel=1e-12)
    torch.testing.assert_close(torch.cat([r["grad"] for r in res]), len(res) * z.grad)
