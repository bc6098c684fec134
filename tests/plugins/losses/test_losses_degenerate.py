"""Issue 15 regressions: dice in log space (margins past 87 in float32, one class), and no NaN
from very negative or masked (-inf) logits in ldr-kl, aldr-kl, emo, two-hot and hl-gauss."""

from __future__ import annotations

import losses_refs as R
import pytest
import torch

import xent_core


def _dice_two_classes(margin: float, target: int, alpha: float, smooth: float) -> float:
    """float64 closed form for logits (margin, 0): p = sigmoid(+-margin), 1 - p = sigmoid(-+m)."""
    m = torch.tensor(margin, dtype=torch.float64)
    p = torch.stack([torch.sigmoid(m), torch.sigmoid(-m)])
    one_minus = torch.stack([torch.sigmoid(-m), torch.sigmoid(m)])
    t = one_minus.pow(alpha) * p
    y = torch.zeros(2, dtype=torch.float64)
    y[target] = 1.0
    return float((1 - (2 * t * y + smooth) / (t.square() + y.square() + smooth)).sum())


@pytest.mark.parametrize("margin", (90.0, 150.0, 400.0))
@pytest.mark.parametrize("target", (0, 1))
def test_dice_float32_beyond_margin_87(margin: float, target: int) -> None:
    x = torch.tensor([[margin, 0.0]], requires_grad=True)
    loss = xent_core.loss("dice", alpha=0.5, reduction="sum")(x, torch.tensor([target]))
    loss.backward()
    expected = _dice_two_classes(margin, target, 0.5, 1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("alpha", (0.01, 1.0))
def test_dice_one_class_is_one_half(alpha: float) -> None:
    x = torch.randn(4, 1, requires_grad=True)
    loss = xent_core.loss("dice", alpha=alpha)(x, torch.zeros(4, dtype=torch.long))
    loss.backward()
    # p = 1, so t = (1 - p)^alpha p = 0 and l = 1 - gamma / (1 + gamma) = 1/2 for gamma = 1
    assert loss.item() == 0.5
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", ("ldr-kl", "aldr-kl"))
def test_ldr_softplus_mean_below_underflow_matches_float64(name: str) -> None:
    gen = torch.Generator().manual_seed(2)
    z = (-120.0 + torch.randn(6, 5, generator=gen)).double()  # float32 values, held exactly
    y = torch.randint(0, 5, (6,), generator=gen)
    params = {"normalize": "softplus-mean"}
    inputs = {"targets": y}
    if name == "aldr-kl":
        params["num_samples"] = 6
        inputs["sample_ids"] = torch.arange(6)
    module = xent_core.loss(name, reduction="none", **params).eval()
    got = module(logits=z.float(), **inputs)
    assert torch.isfinite(got).all()
    if name == "ldr-kl":  # float64 softplus(-120) = e^-120 is representable: a direct reference
        expected = R.ref_ldr_kl(z, y, 0.1, 10.0, "softplus-mean")
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def _masked(c: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(5, c, generator=gen)
    z[:, -1] = float("-inf")  # the last class is masked everywhere and never the target
    return z, torch.randint(0, c - 1, (5,), generator=gen)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ldr-kl", {"normalize": "none"}),
        ("ldr-kl", {}),
        ("aldr-kl", {"normalize": "none", "num_samples": 5}),
        ("emo", {}),
        ("emo", {"mix": "none"}),
        ("dice", {}),
        ("focal", {}),
        ("poly1", {}),
        ("cross-entropy", {}),
    ],
)
def test_masked_logits_give_the_value_without_the_class(name: str, params: dict) -> None:
    """-inf on a class that is never the target equals dropping that class (finite, no NaN)."""
    z, y = _masked(6)
    module = xent_core.loss(name, reduction="none", **params)
    extra = {}
    if name == "aldr-kl":
        extra["sample_ids"] = torch.arange(5)
        module.eval()
    if name == "emo":
        extra["classifier"] = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    x = z.clone().requires_grad_()
    got = module(logits=x, targets=y, **extra)
    got.sum().backward()
    assert torch.isfinite(got).all() and torch.isfinite(x.grad).all()
    assert torch.all(x.grad[:, -1] == 0)
    if name in ("emo", "ldr-kl", "aldr-kl"):
        return  # their value depends on C (log C, mean over classes) or on the embedding rows
    ref_extra = dict(extra)
    ref = xent_core.loss(name, reduction="none", **params)(logits=z[:, :-1], targets=y, **ref_extra)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ("two-hot", "hl-gauss"))
def test_regression_losses_with_a_masked_bin(name: str) -> None:
    module = xent_core.loss(name, vmin=0.0, vmax=1.0, num_bins=6, reduction="none")
    values = torch.tensor([0.1, 0.3, 0.45])  # far from the last bin (weight exactly 0 for two-hot)
    z = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    z[:, -1] = float("-inf")
    x = z.clone().requires_grad_()
    got = module(logits=x, values=values)
    got.sum().backward()
    assert torch.isfinite(x.grad).all()
    if name == "two-hot":
        assert torch.isfinite(got).all()
        target = module.target(values.double())
        expected = -(target[:, :-1] * torch.log_softmax(z[:, :-1].double(), -1)).sum(-1)
        torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-7)
    else:  # the Gaussian histogram puts mass on every bin: -inf there is an infinite loss
        assert not torch.isnan(got).any()
