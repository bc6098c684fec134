"""dcov-reg vs the spec's reference values, the dcor package (peer) and float64 oracles."""

from __future__ import annotations

import dcor
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64
A = torch.arange(1.0, 6.0, dtype=F64)


def reg(pred, prot, **params):
    return float(xent_core.loss("dcov-reg", **params)(pred, prot))


def test_spec_reference_values():
    assert reg(A, A**2) == pytest.approx(7.296, abs=1e-12)
    assert reg(A, A**2, statistic="u-dcov2") == pytest.approx(6.4, abs=1e-12)
    assert reg(A, A**2, statistic="dcor2") == pytest.approx(0.9869160441**2, abs=1e-9)
    b = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0], dtype=F64)
    assert reg(A, b, statistic="dcor2") == pytest.approx(0.5547914073**2, abs=1e-9)


@pytest.mark.parametrize(("n", "p", "q"), [(7, 1, 1), (23, 3, 2), (40, 2, 5)])
@pytest.mark.parametrize("exponent", [1.0, 0.5, 1.5])
def test_random_inputs_match_dcor(n, p, q, exponent):
    g = torch.Generator().manual_seed(n + p + q)
    x = torch.randn(n, p, generator=g, dtype=F64)
    s = x[:, :1] ** 2 + torch.randn(n, q, generator=g, dtype=F64)
    xn, sn = x.numpy(), s.numpy()
    kw = {"exponent": exponent}
    assert reg(x, s, **kw) == pytest.approx(dcor.distance_covariance_sqr(xn, sn, **kw), rel=1e-10)
    assert reg(x, s, statistic="dcor2", **kw) == pytest.approx(
        dcor.distance_correlation_sqr(xn, sn, **kw), rel=1e-10
    )
    assert reg(x, s, statistic="u-dcov2", **kw) == pytest.approx(
        dcor.u_distance_covariance_sqr(xn, sn, **kw), rel=1e-9, abs=1e-12
    )


def test_jdcov2_with_one_attribute_is_dcov2():
    g = torch.Generator().manual_seed(3)
    x, s = torch.randn(11, 2, generator=g, dtype=F64), torch.randn(11, 1, generator=g, dtype=F64)
    for c in (0.5, 1.0, 3.0):
        assert reg(x, s, statistic="jdcov2", c=c) == pytest.approx(reg(x, s), rel=1e-12)


@pytest.mark.parametrize("statistic", ["dcov2", "dcor2", "u-dcov2", "jdcov2"])
@pytest.mark.parametrize("exponent", [1.0, 0.5])
def test_gradcheck_float64(statistic, exponent):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, generator=g, dtype=F64, requires_grad=True)
    s = torch.randn(8, 3, generator=g, dtype=F64)
    loss = xent_core.loss("dcov-reg", statistic=statistic, exponent=exponent)
    assert torch.autograd.gradcheck(lambda p: loss(p, s), (x,), eps=1e-6, atol=1e-6)


def test_constant_attribute_and_duplicates_give_zero_and_finite_gradients():
    x = torch.tensor([0.3, 0.3, -1.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    const = torch.full((5,), 2.0, dtype=F64)
    for statistic in ("dcov2", "dcor2", "jdcov2"):
        for exponent in (1.0, 0.5):
            value = xent_core.loss("dcov-reg", statistic=statistic, exponent=exponent)(x, const)
            (grad,) = torch.autograd.grad(value, x)
            assert float(value.detach()) == pytest.approx(0.0, abs=1e-12)
            assert torch.isfinite(grad).all(), (statistic, exponent)


def test_penalty_decorrelates_predictions_when_minimised():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(64, 1, generator=g, dtype=F64)
    pred = (s[:, 0] + 0.3 * torch.randn(64, generator=g, dtype=F64)).requires_grad_(True)
    loss = xent_core.loss("dcov-reg", statistic="dcor2")
    before = float(loss(pred, s).detach())
    opt = torch.optim.SGD([pred], lr=2.0)
    for _ in range(100):
        opt.zero_grad()
        loss(pred, s).backward()
        opt.step()
    assert before > 0.5 and float(loss(pred, s).detach()) < 0.2 * before


def test_half_precision_is_computed_in_float32():
    x = torch.randn(9, generator=torch.Generator().manual_seed(2))
    s = x**2
    got = xent_core.loss("dcov-reg")(x.to(torch.bfloat16), s.to(torch.bfloat16))
    assert got.dtype == torch.float32
    xb, sb = x.to(torch.bfloat16).double().numpy(), s.to(torch.bfloat16).double().numpy()
    assert float(got) == pytest.approx(dcor.distance_covariance_sqr(xb, sb), rel=1e-5)


@pytest.mark.parametrize(
    ("pred", "prot"),
    [
        (torch.randn(5), torch.randn(4)),  # not paired
        (torch.randn(1), torch.randn(1)),  # too few
        (torch.randn(5, 2, 2), torch.randn(5)),
        (torch.randint(0, 3, (5,)), torch.randn(5)),
        (torch.randn(5), torch.randint(0, 2, (5,))),
        (torch.tensor([1.0, float("nan"), 2.0]), torch.randn(3)),
    ],
)
def test_bad_inputs(pred, prot):
    with pytest.raises(BadInputError):
        xent_core.loss("dcov-reg")(pred, prot)


def test_u_statistic_needs_four_samples():
    with pytest.raises(BadInputError):
        xent_core.loss("dcov-reg", statistic="u-dcov2")(torch.randn(3), torch.randn(3))


@pytest.mark.parametrize(
    "params",
    [{"statistic": "dcor"}, {"exponent": 2.0}, {"exponent": 0}, {"c": 0.0}, {"reduction": "none"}],
)
def test_bad_parameters(params):
    with pytest.raises(BadParameterError):
        xent_core.loss("dcov-reg", **params)
