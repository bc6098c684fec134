"""token-entropy, RollingEntropy and policy-entropy-covariance (with Clip-Cov / KL-Cov)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators.policy_entropy_covariance import clip_cov_mask, kl_cov_mask, token_covariance
from xent_estimators.rolling import RollingEntropy
from xent_estimators.token_entropy import entropy_from_logits

import xent_core
from xent_core import BadInputError, BadParameterError, NotAvailableError
from xent_core.testing import isolated_registry


def ref_entropy(logits: torch.Tensor, softcap=None, scale=1.0) -> torch.Tensor:
    z = logits.double() * scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    logp = torch.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _real_kernel_available() -> bool:
    return any(s.name == "cce-torch" for s in xent_core.list_components("kernel"))


# ------------------------------------------------------------------ token-entropy from logits
def test_token_entropy_from_logits_matches_float64():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 3, 37, generator=g) * 4
    est = xent_core.estimator("token-entropy")
    value, details = est(logits, details=True)
    ref = ref_entropy(logits)
    torch.testing.assert_close(details["per_token"].double(), ref, rtol=1e-5, atol=1e-6)
    assert details["per_token"].shape == (7, 3)
    assert value == pytest.approx(float(ref.mean()), rel=1e-6)
    assert xent_core.estimator("token-entropy", base=2)(logits) == pytest.approx(
        float(ref.mean()) / math.log(2), rel=1e-6
    )
    # float64 stays float64; numpy is accepted
    h64 = entropy_from_logits(logits.double())
    assert h64.dtype == torch.float64
    torch.testing.assert_close(h64, ref, rtol=1e-12, atol=1e-12)
    assert est(logits.numpy()) == pytest.approx(value, rel=1e-6)


def test_token_entropy_softcap_scale_mask_and_half_precision():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(11, 29, generator=g) * 6
    est = xent_core.estimator("token-entropy", softcap=5.0, logit_scale=0.7)
    ref = ref_entropy(logits, softcap=5.0, scale=0.7)
    mask = torch.arange(11) % 3 != 0
    assert est(logits, mask=mask) == pytest.approx(float(ref[mask].mean()), rel=1e-5)
    bf = xent_core.estimator("token-entropy")(logits.bfloat16())
    assert bf == pytest.approx(float(ref_entropy(logits.bfloat16().float()).mean()), rel=1e-5)
    # uniform over V -> log V; one-hot-like -> ~0
    assert xent_core.estimator("token-entropy")(torch.zeros(3, 50)) == pytest.approx(math.log(50))
    peaked = torch.full((2, 10), -1e4)
    peaked[:, 3] = 0
    assert xent_core.estimator("token-entropy")(peaked) == pytest.approx(0.0, abs=1e-6)


def test_token_entropy_bad_inputs():
    est = xent_core.estimator("token-entropy")
    with pytest.raises(BadInputError, match="either logits"):
        est()
    with pytest.raises(BadInputError, match="NaN"):
        est(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(BadInputError, match="mask"):
        est(torch.zeros(4, 5), mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(BadInputError, match="no tokens"):
        est(torch.zeros(4, 5), mask=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(BadInputError, match="only go with hidden"):
        est(logits=torch.zeros(2, 3), bias=torch.zeros(3))
    with pytest.raises(BadParameterError, match="softcap"):
        xent_core.estimator("token-entropy", softcap=-1.0)


# ------------------------------------------------------------------ token-entropy from hidden
def _hidden_case(seed=2, n=(5, 13), d=24, v=71):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*n, d, generator=g)
    classifier = torch.randn(v, d, generator=g) * 0.4
    bias = torch.randn(v, generator=g)
    return hidden, classifier, bias


def test_token_entropy_from_hidden_goes_through_the_registry_kernel():
    import fake_entropy_kernel as fake

    hidden, classifier, bias = _hidden_case()
    with isolated_registry("xent_estimators", ("fake", fake)):
        fake.CALLS.clear()
        est = xent_core.estimator("token-entropy", softcap=8.0, logit_scale=1.3)
        _value, details = est(hidden=hidden, classifier=classifier, bias=bias, details=True)
        assert fake.CALLS == [(65, 24)]  # flattened leading dims, one kernel call
        assert fake.BUDGETS[-1] == 4194304  # the estimator's chunk budget reaches the kernel
        xent_core.estimator("token-entropy", chunk_elements=None)(hidden, classifier)
        assert fake.BUDGETS[-1] == 0  # None keeps the kernel's default
        assert details["per_token"].shape == (5, 13)
        assert details["path"] == "hidden (cce-torch)"
        logits = hidden @ classifier.T + bias
        ref = ref_entropy(logits, softcap=8.0, scale=1.3)
        torch.testing.assert_close(details["per_token"].double(), ref, rtol=1e-5, atol=1e-5)
        assert est(hidden, classifier) == pytest.approx(
            float(ref_entropy(hidden @ classifier.T, 8.0, 1.3).mean()), rel=1e-5
        )
        with pytest.raises(BadInputError, match="share D"):
            est(hidden, classifier[:, :5])
        with pytest.raises(BadInputError, match="bias"):
            est(hidden=hidden, classifier=classifier, bias=bias[:3])


def test_token_entropy_from_hidden_without_a_kernel_says_so():
    hidden, classifier, _ = _hidden_case()
    with isolated_registry("xent_estimators"), pytest.raises(NotAvailableError, match="cce-torch"):
        xent_core.estimator("token-entropy")(hidden, classifier)


@pytest.mark.skipif(
    not _real_kernel_available(), reason="the cce plugin has not registered cce-torch yet"
)
def test_token_entropy_from_hidden_with_the_real_cce_torch_kernel():
    hidden, classifier, bias = _hidden_case(seed=3, n=(3, 37), d=40, v=1031)
    est = xent_core.estimator("token-entropy", softcap=20.0)
    value, details = est(hidden=hidden, classifier=classifier, bias=bias, details=True)
    ref = ref_entropy(hidden @ classifier.T + bias, softcap=20.0)
    torch.testing.assert_close(details["per_token"].double(), ref, rtol=1e-4, atol=1e-4)
    from_logits = est(logits=hidden @ classifier.T + bias)
    assert value == pytest.approx(from_logits, rel=1e-5)


# ------------------------------------------------------------------ RollingEntropy
def test_rolling_entropy_window_statistics():
    g = torch.Generator().manual_seed(4)
    steps = [torch.randn(3, 17, generator=g) * (1 + i) for i in range(9)]
    roll = RollingEntropy(window=4, base=2)
    history = []
    for i, logits in enumerate(steps):
        h = roll.update(logits)
        history.append(ref_entropy(logits) / math.log(2))
        torch.testing.assert_close(h.double(), history[-1], rtol=1e-5, atol=1e-6)
        window = torch.stack(history[-4:])
        assert len(roll) == min(i + 1, 4) and roll.full == (i >= 3)
        torch.testing.assert_close(roll.values.double(), window, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(roll.mean.double(), window.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            roll.std.double(), window.std(0, correction=0), rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(roll.max.double(), window.max(0).values, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(roll.min.double(), window.min(0).values, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(roll.last.double(), history[-1], rtol=1e-5, atol=1e-6)
    assert roll.steps == 9


def test_rolling_entropy_push_scalar_reset_and_errors():
    roll = RollingEntropy(window=3)
    with pytest.raises(BadInputError, match="empty"):
        _ = roll.mean
    for v in (1.0, 2.0, 4.0, 8.0):
        roll.push(v)
    assert float(roll.mean) == pytest.approx((2 + 4 + 8) / 3)
    roll.update(torch.zeros(10))  # a single distribution: scalar entropy log 10
    assert float(roll.last) == pytest.approx(math.log(10), rel=1e-6)
    with pytest.raises(BadInputError, match="batch shape"):
        roll.push(torch.zeros(2))
    roll.reset()
    roll.push(torch.zeros(2))
    assert roll.values.shape == (1, 2)
    with pytest.raises(BadParameterError, match="window"):
        RollingEntropy(window=0)


# ------------------------------------------------------------------ policy-entropy-covariance
def _policy_case(seed=5, shape=(6, 23)):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(*shape, generator=g) * 3
    adv = torch.randn(*shape, generator=g)
    mask = torch.rand(*shape, generator=g) > 0.25
    return logp, adv, mask


def test_policy_entropy_covariance_matches_numpy():
    logp, adv, mask = _policy_case()
    lp, a, m = logp.double().numpy(), adv.double().numpy(), mask.numpy()
    ref_tok = (lp - lp[m].mean()) * (a - a[m].mean()) * m
    ref = float(np.cov(lp[m], a[m], bias=True)[0, 1])
    est = xent_core.estimator("policy-entropy-covariance")
    value, details = est(logp.double(), adv.double(), mask=mask, details=True)
    assert value == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(details["per_token"].numpy(), ref_tok, rtol=1e-12, atol=1e-15)
    assert details["tokens"] == int(m.sum())
    # float32 inputs, no mask
    full = float(np.cov(lp.ravel(), a.ravel(), bias=True)[0, 1])
    assert est(logp, adv) == pytest.approx(full, rel=1e-5)


def test_policy_entropy_covariance_sequence_advantages_broadcast():
    logp, _, mask = _policy_case(seed=6)
    seq_adv = torch.randn(6, generator=torch.Generator().manual_seed(7))
    est = xent_core.estimator("policy-entropy-covariance")
    a = est(logp, seq_adv, mask=mask)
    b = est(logp, seq_adv[:, None].expand_as(logp), mask=mask)
    assert a == pytest.approx(b, rel=1e-12)
    # confident tokens (log pi near 0) with positive advantage -> positive covariance
    lp = torch.tensor([[-0.01, -0.02, -3.0, -2.5]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    assert est(lp, adv) > 0


def test_clip_cov_selection():
    logp, adv, mask = _policy_case(seed=8, shape=(40, 250))
    cov = token_covariance(logp, adv, mask)
    n_valid = int(mask.sum())
    sel = clip_cov_mask(
        logp,
        adv,
        mask,
        clip_ratio=0.01,
        cov_low=0.5,
        cov_high=2.0,
        generator=torch.Generator().manual_seed(0),
    )
    eligible = mask & (cov >= 0.5) & (cov <= 2.0)
    assert int(sel.sum()) == min(int(0.01 * n_valid), int(eligible.sum()))
    assert bool((sel <= eligible).all())  # only eligible tokens are chosen
    again = clip_cov_mask(
        logp,
        adv,
        mask,
        clip_ratio=0.01,
        cov_low=0.5,
        cov_high=2.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(sel, again)
    # defaults (r = 2e-4, [1, 5]): at least one token when any is eligible
    default = clip_cov_mask(logp, adv, mask)
    assert int(default.sum()) == (1 if bool(((cov >= 1) & (cov <= 5) & mask).any()) else 0)
    assert not clip_cov_mask(logp, adv, mask, clip_ratio=0.0).any()
    with pytest.raises(BadParameterError, match="cov_low"):
        clip_cov_mask(logp, adv, mask, cov_low=3, cov_high=1)


def test_kl_cov_selection():
    logp, adv, mask = _policy_case(seed=9, shape=(30, 101))
    cov = token_covariance(logp, adv, mask)
    sel = kl_cov_mask(logp, adv, mask, k_ratio=0.05)
    k = int(0.05 * int(mask.sum()))
    assert int(sel.sum()) == k and bool((sel <= mask).all())
    threshold = cov[sel].min()
    assert bool((cov[mask & ~sel] <= threshold).all())  # exactly the top-k valid tokens
    # default k_ratio: the reference implementation's 2e-4
    assert int(kl_cov_mask(logp, adv, mask).sum()) == max(1, int(2e-4 * int(mask.sum())))


def test_policy_entropy_covariance_bad_inputs():
    est = xent_core.estimator("policy-entropy-covariance")
    logp, adv, mask = _policy_case()
    with pytest.raises(BadInputError, match="advantages"):
        est(logp)
    with pytest.raises(BadInputError, match="token shape"):
        est(logp, adv[:, :5])
    with pytest.raises(BadInputError, match="mask"):
        est(logp, adv, mask=mask[:2])
    with pytest.raises(BadInputError, match="<= 0"):
        est(-logp, adv)
    with pytest.raises(BadInputError, match="no valid tokens"):
        est(logp, adv, mask=torch.zeros_like(mask))
    with pytest.raises(BadInputError, match="NaN"):
        est(torch.tensor([-1.0, float("nan")]), torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------- masked logits
def _masked_logits() -> torch.Tensor:
    # row 0: two equal survivors (entropy log 2); row 1: three survivors with given logits
    ninf = -math.inf
    return torch.tensor([[0.0, 0.0, ninf, ninf, ninf], [1.0, ninf, 2.0, ninf, 0.5]])


def _reference(logits: torch.Tensor) -> torch.Tensor:
    out = []
    for row in logits.double():
        z = row[torch.isfinite(row)]
        p = torch.softmax(z, dim=0)
        out.append(-(p * p.log()).sum())
    return torch.stack(out)


def test_token_entropy_accepts_masked_minus_inf_logits() -> None:
    logits = _masked_logits()
    value, details = xent_core.estimator("token-entropy")(logits, details=True)
    ref = _reference(logits)
    assert torch.allclose(details["per_token"].double(), ref, atol=1e-6)
    assert value == pytest.approx(float(ref.mean()), abs=1e-6)
    assert details["per_token"][0].item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_token_entropy_masked_logits_stay_masked_under_softcap() -> None:
    logits = _masked_logits()
    got = xent_core.estimator("token-entropy", softcap=30.0)(logits, details=True)[1]
    capped = torch.where(torch.isinf(logits), logits, torch.tanh(logits / 30.0) * 30.0)
    assert torch.allclose(got["per_token"].double(), _reference(capped), atol=1e-6)


def test_rolling_entropy_of_masked_logits_is_not_nan() -> None:
    roll = RollingEntropy(window=4, base=2)
    h = roll.update(_masked_logits())
    assert torch.isfinite(h).all()
    assert h[0].item() == pytest.approx(1.0, abs=1e-6)  # two equal survivors: 1 bit
    assert torch.allclose(h.double(), _reference(_masked_logits()) / math.log(2.0), atol=1e-6)


def test_token_entropy_rejects_nan_posinf_and_fully_masked_rows() -> None:
    est = xent_core.estimator("token-entropy")
    with pytest.raises(BadInputError, match="NaN or \\+inf"):
        est(torch.tensor([[0.0, math.nan, -math.inf]]))
    with pytest.raises(BadInputError, match="NaN or \\+inf"):
        est(torch.tensor([[0.0, math.inf, -math.inf]]))
    with pytest.raises(BadInputError, match="-inf everywhere"):
        est(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]))


@pytest.mark.parametrize("shape", [(1,), (5,), (3, 7)])
def test_policy_covariance_without_mask_matches_an_all_true_mask_and_a_plain_loop(shape):
    # no mask skips the masking; an all-True mask runs the general path; a plain float64 loop
    rng = np.random.default_rng(len(shape))
    lp = -rng.exponential(1.0, shape)
    adv = rng.standard_normal(shape[:1])  # one advantage per sequence, broadcast
    est = xent_core.estimator("policy-entropy-covariance")
    value, d = est(lp, adv, details=True)
    value_m, d_m = est(lp, adv, mask=np.ones(shape, dtype=bool), details=True)
    assert est(lp, adv) == value
    a = np.broadcast_to(adv.reshape(adv.shape + (1,) * (lp.ndim - 1)), shape).ravel()
    x = lp.ravel()
    want = sum((xi - x.mean()) * (ai - a.mean()) for xi, ai in zip(x, a)) / len(x)
    assert value == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert value_m == pytest.approx(value, rel=1e-14, abs=1e-16)
    for key in ("tokens", "logprob_mean", "advantage_mean", "positive_fraction"):
        assert d[key] == d_m[key]
    assert torch.equal(d["per_token"], d_m["per_token"])
    with pytest.raises(xent_core.BadInputError):
        est(np.abs(lp) + 0.1, adv)
    with pytest.raises(xent_core.BadInputError):
        est(np.full(shape, np.nan), adv)
