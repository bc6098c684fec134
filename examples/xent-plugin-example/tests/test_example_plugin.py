"""The example plugin tested with the xent plugin author kit."""

from __future__ import annotations

import math

import torch

import xent_core
from xent_core.testing import check_loss, isolated_registry


def brier_reference(logits, targets, reduction):
    p = torch.softmax(logits, -1)
    y = torch.nn.functional.one_hot(targets, logits.shape[-1]).double()
    per = ((p - y) ** 2).sum(-1)
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


def test_brier_conforms():
    torch.manual_seed(0)
    with isolated_registry(("example", "xent_plugin_example")):
        report = check_loss(
            lambda reduction: xent_core.loss("brier", reduction=reduction),
            inputs={"logits": torch.randn(13, 7), "targets": torch.randint(0, 7, (13,))},
            reference=brier_reference,
        )
    assert report.reductions == ["mean", "sum", "none"]


def test_collision_entropy_uniform():
    with isolated_registry(("example", "xent_plugin_example")):
        est = xent_core.estimator("collision-entropy")
        assert math.isclose(est([0, 1, 2, 3] * 5), math.log(4))
