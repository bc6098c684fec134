"""nt-xent with gather_distributed across 2 real gloo processes (CPU).

Each rank holds half of the batch. With gathering, every anchor sees every rank's rows as
negatives, so the mean of the ranks' losses is the single-process loss on the whole batch, and
the gradients (all_gather's backward sums them over ranks) are that loss's gradients scaled by
the number of ranks.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from gloo_ranks import run_ranks

F64 = torch.float64


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    a = torch.randn(6, 5, generator=g, dtype=F64)
    return a, a + 0.4 * torch.randn(6, 5, generator=g, dtype=F64)


def _rank(rank: int, world: int) -> dict[str, Any]:
    from xent_losses.nt_xent import NTXentLoss  # not via the registry: a fresh process

    a, b = _batch()
    half = slice(3 * rank, 3 * rank + 3)
    la = a[half].clone().requires_grad_(True)
    lb = b[half].clone().requires_grad_(True)
    value = NTXentLoss(temperature=0.3, gather_distributed=True)(la, lb)
    value.backward()
    return {"value": value.detach(), "grad_a": la.grad, "grad_b": lb.grad}


@pytest.mark.slow
def test_gathered_loss_equals_the_whole_batch_loss(tmp_path):
    import xent_core

    res = run_ranks(_rank, tmp_path)
    a, b = _batch()
    a.requires_grad_(True)
    b.requires_grad_(True)
    whole = xent_core.loss("nt-xent", temperature=0.3)(a, b)
    whole.backward()
    world = len(res)
    mean_of_ranks = sum(float(r["value"]) for r in res) / world
    assert mean_of_ranks == pytest.approx(float(whole.detach()), rel=1e-12)
    torch.testing.assert_close(torch.cat([r["grad_a"] for r in res]), world * a.grad)
    torch.testing.assert_close(torch.cat([r["grad_b"] for r in res]), world * b.grad)
