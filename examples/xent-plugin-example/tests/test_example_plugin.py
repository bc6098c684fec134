"""The example plugin tested with the xent plugin author kit."""

from __future__ import annotations

import math

import pytest
import torch

import xent_core
from xent_core.testing import check_loss, isolated_registry


def brier_reference(logits, targets, reduction):
    p = torch.softmax(logits, -1)
    y = torch.nn.functional.one_hot(targets, logits.shape[-1]).double()
    per = ((p - y) ** 2).sum(-1)
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


def test_brier_conforms():
    # values and gradients against float64, then the bad-input contract: NaN/inf logits,
    # out-of-range targets, wrong dtypes and shapes raise XentError; empty and all-ignored
    # batches give 0
    torch.manual_seed(0)
    with isolated_registry(("example", "xent_plugin_example")):
        report = check_loss(
            lambda reduction: xent_core.loss("brier", reduction=reduction),
            inputs={"logits": torch.randn(13, 7), "targets": torch.randint(0, 7, (13,))},
            reference=brier_reference,
        )
    assert report.reductions == ["mean", "sum", "none"]
    assert "all-ignored" in report.checks


def test_collision_entropy_uniform():
    with isolated_registry(("example", "xent_plugin_example")):
        est = xent_core.estimator("collision-entropy")
        assert math.isclose(est([0, 1, 2, 3] * 5), math.log(4))
        assert math.copysign(1.0, est([7, 7, 7])) == 1.0  # 0.0, not -0.0


@pytest.mark.parametrize("bad", [None, [], [1.0, math.nan], [[1, 2], [3]]])
def test_collision_entropy_bad_input(bad):
    with isolated_registry(("example", "xent_plugin_example")):
        est = xent_core.estimator("collision-entropy")
        with pytest.raises(xent_core.BadInputError):
            est(bad)


@pytest.mark.parametrize("base", [1, 0.5, "2", None, math.nan])
def test_collision_entropy_bad_base(base):
    with (
        isolated_registry(("example", "xent_plugin_example")),
        pytest.raises(xent_core.BadParameterError),
    ):
        xent_core.estimator("collision-entropy", base=base)
