"""dco (whole-answer pass@N loss) and the pass-at-k estimator vs exact references."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from xent_losses.dco import coverage_weight, dco_from_logprobs

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64


def dco(**params):
    return xent_core.loss("dco", **params)


@pytest.mark.parametrize(
    "lp, n, want",
    [(-2.0, 1, 2.0), (-2.0, 4, 0.8186495308), (-2.0, 16, 0.1027257890),
     (-0.1, 4, 8.2013e-5), (-10.0, 4, 8.6137737390)],
)  # fmt: skip
def test_spec_values(lp, n, want):
    got = dco(n=n)(logprobs=torch.tensor([lp], dtype=F64))
    assert float(got) == pytest.approx(want, rel=1e-9 if want > 1e-3 else 1e-4)


def test_matches_mpmath_across_the_range_and_its_gradient_is_minus_f():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 2500  # (1 - p)^N reaches 1e-2304 at lp = -1e-9, N = 256: the direct formula
    for lp in (-1e-9, -1e-3, -0.7, -3.0, -39.0, -41.0, -300.0):
        for n in (1, 4, 256):
            p = mp.exp(mp.mpf(lp))
            want = -mp.log(1 - (1 - p) ** n)
            x = torch.tensor([lp], dtype=F64, requires_grad=True)
            got = dco_from_logprobs(x, n)
            assert float(got.detach()) == pytest.approx(float(want), rel=1e-12, abs=1e-300), (lp, n)
            (g,) = torch.autograd.grad(got.sum(), x)
            f = n * p * (1 - p) ** (n - 1) / (1 - (1 - p) ** n)
            assert float(-g) == pytest.approx(float(f), rel=1e-9), (lp, n)
            assert float(coverage_weight(x, n)) == pytest.approx(float(f), rel=1e-9), (lp, n)
    assert float(coverage_weight(torch.tensor([-2.0], dtype=F64), 4)) == pytest.approx(
        0.7935041717, abs=1e-10
    )


def test_certain_answer_gives_zero_loss_and_zero_gradient():
    x = torch.tensor([0.0, -1.0], dtype=F64, requires_grad=True)
    out = dco(n=4, reduction="none")(logprobs=x)
    out.sum().backward()
    assert out[0] == 0 and x.grad[0] == 0 and torch.isfinite(x.grad).all()


def _batch(seed: int, b: int = 3, t: int = 7, v: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=F64)
    targets = torch.randint(0, v, (b, t), generator=g)
    targets[:, :3] = -100  # the prompt
    targets[1, 5:] = -100  # padding
    return logits, targets


def _answer_logprob(logits, targets):
    """Naive float64: the sum over answer tokens of log softmax at the target."""
    out = []
    for row_z, row_y in zip(logits, targets):
        total = torch.zeros((), dtype=F64)
        for z, y in zip(row_z, row_y):
            if int(y) != -100:
                total = total + z[y] - torch.logsumexp(z, 0)
        out.append(total)
    return torch.stack(out)


def test_logits_path_sums_over_the_answer_and_n1_is_sequence_ce():
    logits, targets = _batch(0)
    lp = _answer_logprob(logits, targets)
    for n in (1, 4):
        got = dco(n=n, reduction="none")(logits=logits, targets=targets)
        torch.testing.assert_close(got, dco_from_logprobs(lp, n))
    seq_ce = dco(n=1, reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(seq_ce, -lp)


def test_hidden_classifier_path_equals_logits_path():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 6, 5, generator=g, dtype=F64)
    w = torch.randn(9, 5, generator=g, dtype=F64)
    bias = torch.randn(9, generator=g, dtype=F64)
    targets = torch.randint(0, 9, (2, 6), generator=g)
    targets[:, :2] = -100
    loss = dco(n=8)
    via_hidden = loss(hidden=hidden, classifier=w, targets=targets, bias=bias)
    via_logits = loss(logits=hidden @ w.T + bias, targets=targets)
    torch.testing.assert_close(via_hidden, via_logits)


def test_gradcheck_logits_and_logprobs_paths():
    logits, targets = _batch(2, b=2, t=4, v=5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: dco(n=4)(logits=z, targets=targets), (logits,))
    lp = -torch.rand(5, dtype=F64) * 5 - 0.01
    lp.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: dco(n=16, reduction="sum")(logprobs=x), (lp,))


def test_reductions_ignored_sequences_and_min_weight():
    logits, targets = _batch(3)
    targets[2] = -100  # no answer token: the sequence is ignored
    per = dco(reduction="none")(logits=logits, targets=targets)
    assert per.shape == (3,) and per[2] == 0
    assert float(dco(reduction="sum")(logits=logits, targets=targets)) == pytest.approx(
        float(per.sum())
    )
    assert float(dco()(logits=logits, targets=targets)) == pytest.approx(float(per[:2].mean()))
    everything = torch.full_like(targets, -100)
    z = logits.clone().requires_grad_(True)
    out = dco()(logits=z, targets=everything)
    out.backward()
    assert out == 0 and torch.all(z.grad == 0)
    lp = torch.tensor([-0.01, -3.0], dtype=F64)  # F(4, 0.99) ~ 4e-6 is dropped
    kept = dco(min_weight=1e-3, reduction="none")(logprobs=lp)
    assert kept[0] == 0 and kept[1] > 0
    assert float(dco(min_weight=1e-3)(logprobs=lp)) == pytest.approx(float(kept[1]))


def test_bad_inputs_and_parameters():
    logits, targets = _batch(4)
    with pytest.raises(BadInputError, match="exactly one"):
        dco()(logits=logits, targets=targets, logprobs=torch.zeros(3))
    with pytest.raises(BadInputError, match="exactly one"):
        dco()()
    with pytest.raises(BadInputError, match="<= 0"):
        dco()(logprobs=torch.tensor([0.5]))
    with pytest.raises(BadInputError, match=r"\(B,\)"):
        dco()(logprobs=torch.zeros(2, 3))
    with pytest.raises(BadInputError, match="targets"):
        dco()(logits=logits)
    with pytest.raises(BadInputError, match="shape"):
        dco()(logits=logits, targets=targets[:, :-1])
    with pytest.raises(BadInputError, match=r"\[0, 11\)"):
        dco()(logits=logits, targets=targets + 20)
    with pytest.raises(BadInputError, match="classifier"):
        dco()(hidden=torch.randn(2, 3, 4), targets=torch.zeros(2, 3, dtype=torch.long))
    for bad in ({"n": 0}, {"n": 2.0}, {"reduction": "avg"}, {"min_weight": -1.0}):
        with pytest.raises(BadParameterError):
            dco(**bad)


def test_stack_routes_logprobs_by_name():
    stack = xent_core.stack("dco(n=2) + 0.5*dco(n=8)")
    lp = torch.tensor([-1.0, -2.0], dtype=F64)
    want = dco(n=2)(logprobs=lp) + 0.5 * dco(n=8)(logprobs=lp)
    torch.testing.assert_close(stack(logprobs=lp), want)


# ------------------------------------------------------------------------------ pass-at-k
def exact_pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_pass_at_k_spec_values_and_edges():
    est = xent_core.estimator("pass-at-k", k=[1, 5])
    value, d = est(10, [3], details=True)
    assert value == pytest.approx(0.3, abs=1e-15)
    assert d["pass_at"][5] == pytest.approx(0.9166666667, abs=1e-10)
    assert d["pass_at"][5] == pytest.approx(1 - 21 / 252, abs=1e-15)
    assert xent_core.estimator("pass-at-k", k=3)([10, 10], [0, 8]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "n, c, k",
    [(200, 7, 10), (1000, 1, 1), (10**6, 3, 100), (10**6, 10**5, 1000), (50, 49, 2)],
)
def test_pass_at_k_matches_exact_rational_arithmetic(n, c, k):
    got = xent_core.estimator("pass-at-k", k=k)([n], [c])
    assert got == pytest.approx(exact_pass_at_k(n, c, k), rel=1e-10, abs=1e-300)


def test_pass_at_k_errors():
    est = xent_core.estimator("pass-at-k", k=5)
    with pytest.raises(BadInputError, match="k > n"):
        est([4], [1])
    with pytest.raises(BadInputError, match=r"\[0, num_samples\]"):
        est([10], [11])
    with pytest.raises(BadInputError, match="one per problem"):
        est([10, 10, 10], [1, 2])
    with pytest.raises(BadInputError, match="whole"):
        est([10], [1.5])
    with pytest.raises(BadInputError):
        est([10])
    with pytest.raises(BadParameterError):
        xent_core.estimator("pass-at-k", k=0)
    with pytest.raises(BadParameterError):
        xent_core.estimator("pass-at-k", k=[])
