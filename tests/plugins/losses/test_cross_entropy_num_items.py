"""``num_items``: micro-batch cross-entropy losses add up to the full-batch mean."""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core import BadInputError


def test_micro_batches_with_num_items_equal_the_full_batch_mean():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(23, 11, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (23,), generator=g)
    targets[[2, 7, 19]] = -100
    loss = xent_core.loss("cross-entropy", z_loss=1e-3, label_smoothing=0.1)
    full = loss(logits=logits, targets=targets)
    (g_full,) = torch.autograd.grad(full, logits)
    n_valid = int((targets != -100).sum())
    parts = [slice(0, 9), slice(9, 23)]
    acc = sum(loss(logits=logits[s], targets=targets[s], num_items=n_valid) for s in parts)
    (g_acc,) = torch.autograd.grad(acc, logits)
    torch.testing.assert_close(acc, full)
    torch.testing.assert_close(g_acc, g_full)
    # without num_items each micro-batch averages over itself: a different (wrong) total
    naive = sum(loss(logits=logits[s], targets=targets[s]) for s in parts)
    assert not torch.allclose(naive, full)


def test_num_items_in_a_stack_with_kd():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(10, 7, generator=g)
    teacher = torch.randn(10, 7, generator=g)
    targets = torch.randint(0, 7, (10,), generator=g)
    stack = xent_core.stack("cross-entropy + 0.5*kd(temperature=2)")
    a = stack(logits=logits[:4], teacher_logits=teacher[:4], targets=targets[:4], num_items=10)
    b = stack(logits=logits[4:], teacher_logits=teacher[4:], targets=targets[4:], num_items=10)
    full = stack(logits=logits, teacher_logits=teacher, targets=targets)
    torch.testing.assert_close(a + b, full)


@pytest.mark.parametrize("bad", [-1, float("nan"), torch.ones(2), "ten", True])
def test_bad_num_items(bad):
    with pytest.raises(BadInputError, match="num_items"):
        xent_core.loss("cross-entropy")(
            logits=torch.randn(3, 4), targets=torch.tensor([0, 1, 2]), num_items=bad
        )
