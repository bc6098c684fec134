"""kd, reverse-kl, jsd, skew-kl, skew-reverse-kl, tvd, dkd, dist against float64 references."""

from __future__ import annotations

import zlib

import pytest
import torch
from distill_refs import dist, dkd, jsd, kl, probs, reduce, skew_kl, skew_reverse_kl, tvd

import xent_core
from xent_core.testing import check_loss

N, C = 13, 11  # odd sizes


def _inputs(seed: int, lead=(N,), c=C, ignore_every=4):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*lead, c, generator=g) * 2
    t = torch.randn(*lead, c, generator=g) * 2
    y = torch.randint(0, c, lead, generator=g)
    y.view(-1)[::ignore_every] = -100
    return s, t, y


# name, params, per-row reference (p_teacher, q_student) at the given temperature, T^2 factor
CASES = [
    ("kd", {"temperature": 2.0}, lambda p, q: kl(p, q), 4.0),
    ("kd", {"temperature": 2.0, "scale_by_t2": False}, lambda p, q: kl(p, q), 1.0),
    ("reverse-kl", {"temperature": 1.5}, lambda p, q: kl(q, p), 1.0),
    ("jsd", {"beta": 0.3, "temperature": 1.5}, lambda p, q: jsd(p, q, 0.3), 1.0),
    ("jsd", {"beta": 0.7, "normalize": False}, lambda p, q: jsd(p, q, 0.7, False), 1.0),
    ("skew-kl", {"alpha": 0.1, "temperature": 2.0}, lambda p, q: skew_kl(p, q, 0.1), 1.0),
    ("skew-reverse-kl", {"alpha": 0.2}, lambda p, q: skew_reverse_kl(p, q, 0.2), 1.0),
    ("tvd", {"temperature": 0.7}, lambda p, q: tvd(p, q), 1.0),
]


@pytest.mark.parametrize(("name", "params", "row_ref", "scale"), CASES)
def test_divergence_matches_float64_reference(name, params, row_ref, scale):
    s, t, y = _inputs(zlib.crc32(name.encode()) % 1000)
    temp = params.get("temperature", 1.0)

    def reference(reduction, logits, teacher_logits, targets):
        values = scale * row_ref(probs(teacher_logits, temp), probs(logits, temp))
        return reduce(values, targets != -100, reduction)

    check_loss(
        lambda reduction: xent_core.loss(name, reduction=reduction, **params),
        {"logits": s, "teacher_logits": t, "targets": y},
        reference,
        grad_inputs=("logits",),
        atol=1e-10,
        rtol=1e-8,
        bad_inputs=False,  # bad-input contract: tests/sweep/test_sweep_losses.py (known gaps listed)
    )


def test_leading_dims_are_flattened_and_none_keeps_them():
    s, t, y = _inputs(3, lead=(3, 5))
    out = xent_core.loss("kd", reduction="none")(s, t, targets=y)
    assert out.shape == (3, 5)
    flat = xent_core.loss("kd", reduction="none")(
        s.reshape(15, C), t.reshape(15, C), targets=y.reshape(15)
    )
    torch.testing.assert_close(out.reshape(15), flat)
    assert bool((out[y == -100] == 0).all())


def test_dkd_matches_reference_and_kl_decomposition():
    s, t, y = _inputs(7)
    y = y.clamp(min=0)
    s64 = s.double().requires_grad_()
    got = xent_core.loss("dkd", alpha=1.0, beta=8.0, temperature=4.0, reduction="none")(s64, y, t)
    want = dkd(s64, t, y, 1.0, 8.0, 4.0)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    g1 = torch.autograd.grad(got.sum(), s64)[0]
    g2 = torch.autograd.grad(dkd(s64, t, y, 1.0, 8.0, 4.0).sum(), s64)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-10)
    # KL(p || q) = TCKD + (1 - p_y) NCKD, checked through the loss's own two weights.
    temp = 3.0
    tckd = xent_core.loss(
        "dkd", alpha=1.0, beta=0.0, temperature=temp, scale_by_t2=False, reduction="none"
    )(s64, y, t)
    nckd = xent_core.loss(
        "dkd", alpha=0.0, beta=1.0, temperature=temp, scale_by_t2=False, reduction="none"
    )(s64, y, t)
    p = probs(t, temp)
    p_y = p.gather(-1, y[:, None]).squeeze(-1)
    full = kl(p, probs(s64, temp))
    torch.testing.assert_close(tckd + (1 - p_y) * nckd, full, rtol=1e-10, atol=1e-12)
    assert (
        float((tckd - full).detach().abs().max()) > 1e-3
    )  # the identity is not trivially satisfied


def test_dist_matches_numpy_pearson():
    s, t, y = _inputs(11)
    s64 = s.double()
    got = xent_core.loss("dist", beta=1.0, gamma=2.0, temperature=2.0)(s64, t)
    assert (
        abs(float(got) - dist(s64, t, 1.0, 2.0, 2.0)) < 1e-6
    )  # DIST's eps=1e-8 in the denominator
    # ignored rows are dropped from both terms; sum = mean * kept rows
    keep = y != -100
    masked = xent_core.loss("dist", beta=1.0, gamma=2.0, temperature=2.0)(s64, t, targets=y)
    assert abs(float(masked) - dist(s64[keep], t[keep], 1.0, 2.0, 2.0)) < 1e-6
    summed = xent_core.loss("dist", beta=1.0, gamma=2.0, temperature=2.0, reduction="sum")(
        s64, t, targets=y
    )
    torch.testing.assert_close(summed, masked * keep.sum())
    x = s64[:5, :4].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: xent_core.loss("dist", gamma=0.5)(z, t[:5, :4].double()), (x,)
    )


def test_jsd_symmetric_at_half_and_continuous_at_both_ends():
    s, t, _ = _inputs(5)
    s64, t64 = s.double(), t.double()
    half = xent_core.loss("jsd", beta=0.5, reduction="none")
    torch.testing.assert_close(half(s64, t64), half(t64, s64), rtol=1e-12, atol=1e-13)
    fwd = xent_core.loss("kd", scale_by_t2=False, reduction="none")(s64, t64)
    rev = xent_core.loss("reverse-kl", reduction="none")(s64, t64)
    torch.testing.assert_close(xent_core.loss("jsd", beta=0.0, reduction="none")(s64, t64), fwd)
    torch.testing.assert_close(xent_core.loss("jsd", beta=1.0, reduction="none")(s64, t64), rev)
    # approaching the ends in float32 stays accurate (no cancellation blow-up)
    for beta, end in [(1e-6, fwd), (1 - 1e-6, rev)]:
        near = xent_core.loss("jsd", beta=beta, reduction="none")(s, t)
        torch.testing.assert_close(near.double(), end, rtol=1e-4, atol=1e-5)
    assert float((fwd - rev).abs().max()) > 1e-2  # the two ends really differ


def test_skew_endpoints_are_kl_and_mixture_bounds_log_ratio():
    s, t, _ = _inputs(6)
    s64, t64 = s.double(), t.double()
    fwd = xent_core.loss("kd", scale_by_t2=False, reduction="none")(s64, t64)
    rev = xent_core.loss("reverse-kl", reduction="none")(s64, t64)
    torch.testing.assert_close(
        xent_core.loss("skew-kl", alpha=0.0, reduction="none")(s64, t64), fwd
    )
    torch.testing.assert_close(
        xent_core.loss("skew-reverse-kl", alpha=0.0, reduction="none")(s64, t64), rev
    )
    assert float(xent_core.loss("skew-kl", alpha=1.0)(s64, t64)) == pytest.approx(0.0, abs=1e-12)
    # a student that rules a class out: KL is infinite, skew KL stays below -log(alpha)
    s_bad = s64.clone()
    s_bad[:, 0] = float("-inf")
    assert torch.isinf(xent_core.loss("kd", reduction="none")(s_bad, t64)).all()
    skew = xent_core.loss("skew-kl", alpha=0.1, reduction="none")(s_bad, t64)
    assert bool(torch.isfinite(skew).all()) and bool(
        (skew <= -torch.log(torch.tensor(0.1)) + 1e-12).all()
    )


def test_teacher_masked_classes_are_zero_probability_not_nan():
    s, t, _ = _inputs(8)
    t = t.clone()
    t[:, :3] = float("-inf")
    x = s.double().requires_grad_()
    for name in ["kd", "jsd", "skew-kl", "skew-reverse-kl", "tvd"]:
        out = xent_core.loss(name)(x, t)
        (g,) = torch.autograd.grad(out, x)
        assert bool(torch.isfinite(out)) and bool(torch.isfinite(g).all()), name
    # reverse KL is infinite when the student keeps mass where the teacher has none
    assert torch.isinf(xent_core.loss("reverse-kl")(x, t))


@pytest.mark.parametrize(
    "name", ["kd", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "tvd", "dkd"]
)
def test_gradcheck_float64_tiny(name):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([1, -100, 4])
    loss = xent_core.loss(name, temperature=1.7)
    if name == "dkd":
        assert torch.autograd.gradcheck(lambda z: loss(z, y, t), (s,))
    else:
        assert torch.autograd.gradcheck(lambda z: loss(z, t, targets=y), (s,))


def test_bfloat16_inputs_are_computed_in_float32():
    s, t, y = _inputs(9)
    got = xent_core.loss("kd", temperature=2.0)(s.bfloat16(), t.bfloat16(), targets=y)
    assert got.dtype == torch.float32
    want = xent_core.loss("kd", temperature=2.0)(
        s.bfloat16().double(), t.bfloat16().double(), targets=y
    )
    assert abs(float(got) - float(want)) < 1e-5
