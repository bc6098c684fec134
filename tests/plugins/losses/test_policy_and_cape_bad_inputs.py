"""Issue 15 regressions the registry sweep found once cape, dco, implicit-prm, clip-cov and
kl-cov were driven with their own example inputs: non-finite logits, empty batches and
integer log-probabilities are refused or give 0, never a NaN or a silently cast value."""

from __future__ import annotations

import math

import pytest
import torch

import xent_core
from xent_core import BadInputError
from xent_core.testing import example_inputs

LOSSES = ("cape", "dco", "implicit-prm", "clip-cov", "kl-cov")


def _examples(name: str) -> dict[str, torch.Tensor]:
    spec = xent_core.info(name, kind="loss")
    inputs = example_inputs(spec, seed=3)
    assert inputs is not None, f"{name} declares no example_inputs"
    return inputs


@pytest.mark.parametrize("bad", (math.nan, math.inf, -math.inf), ids=("nan", "inf", "-inf"))
def test_cape_refuses_non_finite_logits(bad: float) -> None:
    inputs = _examples("cape")
    inputs["logits"][4, 1] = bad
    with pytest.raises(BadInputError, match="logits contains"):
        xent_core.loss("cape")(**inputs)


def test_cape_value_and_empty_batch() -> None:
    inputs = _examples("cape")
    z, q = inputs["logits"].double(), inputs["targets"].double()
    p = torch.softmax(z, -1)[:, 1]
    want = -(q * p.log() + (1 - q) * (1 - p).log()).mean()  # the paper's formula, float64
    got = xent_core.loss("cape")(logits=z, targets=q)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    empty = xent_core.loss("cape")(logits=torch.zeros(0, 2), targets=torch.zeros(0))
    assert float(empty) == 0.0  # was NaN (the mean of no items)


@pytest.mark.parametrize("bad", (math.nan, math.inf), ids=("nan", "inf"))
def test_dco_refuses_nan_and_inf_logits(bad: float) -> None:
    inputs = _examples("dco")
    inputs["logits"][1, 2, 3] = bad
    with pytest.raises(BadInputError, match="logits contain"):
        xent_core.loss("dco")(**inputs)
    with xent_core.input_checks(False):  # the switch turns the value check off
        xent_core.loss("dco")(**inputs)


def test_dco_masked_class_stays_usable() -> None:
    inputs = _examples("dco")
    t = inputs["targets"]
    logits = inputs["logits"].double()
    masked = (t[0, 1] + 1) % logits.shape[-1]  # a class no target uses in that position
    logits[0, 1, masked] = -math.inf
    got = xent_core.loss("dco", n=1)(logits=logits, targets=t)  # N = 1: the sequence CE
    logp = torch.log_softmax(logits, -1)
    keep = t != -100
    tok = logp.gather(-1, torch.where(keep, t, 0)[..., None])[..., 0]
    want = -(torch.where(keep, tok, torch.zeros_like(tok)).sum(1)).mean()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_implicit_prm_value_and_empty_batch() -> None:
    inputs = _examples("implicit-prm")
    lp, ref, y, m = (inputs[k] for k in ("logprobs", "ref_logprobs", "labels", "mask"))
    r = 0.05 * ((lp.double() - ref.double()) * m).sum(1)
    s = torch.sigmoid(r)
    want = -(y * s.log() + (1 - y) * (1 - s).log()).mean()
    got = xent_core.loss("implicit-prm")(
        **{k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    empty = {k: v[:0] for k, v in inputs.items()}
    assert float(xent_core.loss("implicit-prm")(**empty)) == 0.0  # was NaN


@pytest.mark.parametrize("name", ("clip-cov", "kl-cov"))
def test_policy_losses_refuse_integer_old_logprobs(name: str) -> None:
    inputs = _examples(name)
    inputs["old_logprobs"] = inputs["old_logprobs"].round().long()  # was silently cast
    with pytest.raises(BadInputError, match="old_logprobs must be a floating-point tensor"):
        xent_core.loss(name)(**inputs)


@pytest.mark.parametrize("name", LOSSES)
def test_examples_are_finite_and_differentiable(name: str) -> None:
    inputs = _examples(name)
    key = "logprobs" if "logprobs" in inputs else "logits"
    inputs[key] = inputs[key].clone().requires_grad_(True)
    out = xent_core.loss(name)(**inputs)
    (grad,) = torch.autograd.grad(out, inputs[key])
    assert torch.isfinite(out) and torch.isfinite(grad).all() and bool(grad.abs().sum() > 0)
