"""The plugin author kit catches wrong losses and passes right ones."""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core.testing import check_loss, isolated_registry


def ce_reference(logits, targets, reduction):
    per = torch.logsumexp(logits, -1) - logits.gather(-1, targets[:, None])[:, 0]
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


def data():
    torch.manual_seed(0)
    return {"logits": torch.randn(11, 6), "targets": torch.randint(0, 6, (11,))}


def test_correct_loss_passes():
    with isolated_registry("toy_plugin"):
        report = check_loss(
            lambda reduction: xent_core.loss("toy-ce", reduction=reduction), data(), ce_reference
        )
    assert report.reductions == ["mean", "sum", "none"]
    assert report.max_value_error < 1e-12


def test_wrong_value_is_caught():
    with isolated_registry("toy_plugin"), pytest.raises(AssertionError, match="value differs"):
        check_loss(
            lambda reduction: xent_core.loss("toy-ce", reduction=reduction, scale=1.01),
            data(),
            ce_reference,
        )


def test_wrong_reduction_shape_is_caught():
    class AlwaysMean(xent_core.Loss):
        def __init__(self, reduction: str = "mean"):
            super().__init__()

        def forward(self, logits, targets):
            return ce_reference(logits, targets, "mean")

    with pytest.raises(AssertionError, match="shape"):
        check_loss(AlwaysMean, data(), ce_reference, reductions=("none",))


def test_non_differentiable_is_caught():
    class Detached(xent_core.Loss):
        def __init__(self, reduction: str = "mean"):
            super().__init__()
            self.reduction = reduction

        def forward(self, logits, targets):
            return ce_reference(logits.detach(), targets, self.reduction).requires_grad_(True)

    with pytest.raises(AssertionError, match="no gradient"):
        check_loss(Detached, data(), ce_reference, reductions=("mean",))


def test_isolated_registry_restores_the_previous_one():
    before = xent_core.get_registry()
    with isolated_registry("toy_plugin") as reg:
        assert xent_core.get_registry() is reg
    assert xent_core.get_registry() is before
