"""The plugin author kit catches wrong losses and passes right ones."""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core.testing import check_bad_inputs, check_loss, isolated_registry


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


# ---- the bad-input contract (check_bad_inputs, run by check_loss by default)
class NaiveCE(xent_core.Loss):
    """Right on good inputs, but no input checks at all: the kit must catch each gap."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, targets):
        per = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        return {"mean": per.mean(), "sum": per.sum(), "none": per}[self.reduction]


def test_naive_loss_passes_values_but_fails_the_contract():
    check_loss(NaiveCE, data(), ce_reference, bad_inputs=False, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError, match=r"\[nan in logits\] no XentError"):
        check_loss(NaiveCE, data(), ce_reference, rtol=1e-5, atol=1e-6)


class Patched(NaiveCE):
    """NaiveCE with some of the checks; ``skip`` names the one left out."""

    def __init__(self, reduction: str = "mean", skip: str = ""):
        super().__init__(reduction)
        self.skip = skip

    def forward(self, logits, targets):
        if self.skip != "finite" and not torch.isfinite(logits).all():
            raise xent_core.BadInputError("non-finite logits")
        if self.skip != "dtype" and (not logits.is_floating_point() or targets.is_floating_point()):
            raise xent_core.BadInputError("dtype")
        if self.skip != "shape" and targets.shape != logits.shape[:-1]:
            raise xent_core.BadInputError("shape")
        keep = targets != -100
        if (
            self.skip != "range"
            and ((targets[keep] < 0) | (targets[keep] >= logits.shape[-1])).any()
        ):
            raise xent_core.BadInputError("range")
        if self.skip == "ignore":  # mean over nothing: NaN
            return super().forward(logits, torch.where(keep, targets, 0))
        per = torch.where(keep, torch.logsumexp(logits, -1) - logits.gather(
            -1, torch.where(keep, targets, 0)[:, None])[:, 0], 0.0)  # fmt: skip
        if self.reduction == "none":
            return per
        return per.sum() if self.reduction == "sum" else per.sum() / keep.sum().clamp(min=1)


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        ("finite", r"\[nan in logits\] no XentError"),
        ("dtype", r"\[int64 logits\] no XentError"),  # silently cast to float
        ("range", r"\[target 6\] raised a raw RuntimeError"),
        ("shape", r"\[targets one item short\] raised a raw RuntimeError"),
        ("ignore", r"\[(empty batch|all targets ignored), mean\] expected 0"),
    ],
)
def test_each_missing_check_is_caught(skip, message):
    def factory(reduction):
        return Patched(reduction, skip=skip)

    with pytest.raises(AssertionError, match=message):
        check_bad_inputs(factory, data())
    names = check_bad_inputs(lambda reduction: Patched(reduction), data())
    assert {"nan:logits", "inf:logits", "dtype:logits", "range:6", "range:-1"} <= set(names)
    assert {"dtype:targets", "shape:targets", "empty", "all-ignored"} <= set(names)


def test_empty_batch_must_not_be_nan():
    def factory(reduction):
        return Patched(reduction, skip="ignore")  # mean of nothing is NaN

    data_ = data()
    empty_ok = Patched("mean")(data_["logits"][:0], data_["targets"][:0])
    assert float(empty_ok) == 0.0
    with pytest.raises(AssertionError, match="empty batch, mean"):
        check_bad_inputs(factory, data_, ignore_index=None)


class _WithExamples:
    @staticmethod
    def example_inputs(generator):
        return {"logits": torch.randn(3, 4, generator=generator)}


class _EstimatorExamples:
    @classmethod
    def example_inputs(cls, generator):
        return [torch.rand(5, generator=generator)]


class _BadExamples:
    @staticmethod
    def example_inputs(generator):
        return torch.zeros(3)


def test_example_inputs_hook_is_read_and_seeded():
    from xent_core.testing import example_inputs

    a, b = example_inputs(_WithExamples, seed=1), example_inputs(_WithExamples(), seed=1)
    assert set(a) == {"logits"} and torch.equal(a["logits"], b["logits"])
    assert not torch.equal(a["logits"], example_inputs(_WithExamples, seed=2)["logits"])
    args = example_inputs(_EstimatorExamples)
    assert isinstance(args, tuple) and args[0].shape == (5,)
    assert example_inputs(ce_reference) is None  # no hook: the caller's generic inputs
    with pytest.raises(TypeError, match="dict of named inputs"):
        example_inputs(_BadExamples)


def test_example_inputs_of_a_registered_spec_follow_its_kind():
    from xent_core.testing import example_inputs

    loss_spec = xent_core.info("cape", kind="loss")
    assert set(example_inputs(loss_spec)) == {"logits", "targets"}
    est_spec = xent_core.info("best-of-n-kl", kind="estimator")
    probs, rewards = example_inputs(est_spec)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-12) and rewards.shape == probs.shape
    assert example_inputs(xent_core.info("cross-entropy", kind="loss")) is None
