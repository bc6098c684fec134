"""implicit-prm, clip-cov and kl-cov vs oracles written from the reference formulas."""

from __future__ import annotations

import math

import pytest
import torch
from xent_estimators.policy_entropy_covariance import clip_cov_mask, kl_cov_mask
from xent_losses._policy import centred_covariance
from xent_losses.implicit_prm import implicit_process_rewards

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64

# ------------------------------------------------------------------------------ implicit-prm
LP = [[-1.0, -2.0, -0.5], [-0.3, -0.2, -4.0]]
REF = [[-1.5, -2.5, -0.5], [-0.3, -0.1, -1.0]]
MASK = [[1, 1, 1], [1, 1, 0]]


def prm_oracle(lp, ref, mask, labels, beta):
    """The official form: r = beta * sum(mask * (lp - ref)), sigmoid, then BCE (moderate r)."""
    out = []
    for row_lp, row_ref, row_m, y in zip(lp, ref, mask, labels):
        r = beta * sum(m * (a - b) for a, b, m in zip(row_lp, row_ref, row_m))
        s = 1 / (1 + math.exp(-r))
        out.append(-(y * math.log(s) + (1 - y) * math.log(1 - s)))
    return out


def test_implicit_prm_spec_value_and_token_rewards():
    lp = torch.tensor(LP, dtype=F64, requires_grad=True)
    loss = xent_core.loss("implicit-prm")(lp, torch.tensor(REF, dtype=F64),
                                          torch.tensor([1.0, 0.0]), torch.tensor(MASK))  # fmt: skip
    assert float(loss.detach()) == pytest.approx(0.6795549768, abs=1e-10)
    q = implicit_process_rewards(torch.tensor(LP), torch.tensor(REF), torch.tensor(MASK)).token
    torch.testing.assert_close(
        q, torch.tensor([[0.025, 0.05, 0.05], [0.0, -0.005, -0.005]]), atol=1e-7, rtol=0
    )


def test_implicit_prm_random_vs_oracle_soft_labels_gradcheck_and_frozen_ref():
    g = torch.Generator().manual_seed(0)
    lp = -torch.rand(4, 9, generator=g, dtype=F64) * 3
    ref = -torch.rand(4, 9, generator=g, dtype=F64) * 3
    mask = torch.rand(4, 9, generator=g) > 0.3
    labels = torch.tensor([1.0, 0.0, 0.3, 1.0], dtype=F64)
    want = prm_oracle(lp.tolist(), ref.tolist(), mask.int().tolist(), labels.tolist(), 0.1)
    per = xent_core.loss("implicit-prm", beta=0.1, reduction="none")(lp, ref, labels, mask)
    torch.testing.assert_close(per, torch.tensor(want, dtype=F64))
    total = xent_core.loss("implicit-prm", beta=0.1, reduction="sum")(lp, ref, labels, mask)
    assert float(total) == pytest.approx(sum(want))
    x = lp.clone().requires_grad_(True)
    r = ref.clone().requires_grad_(True)
    loss = xent_core.loss("implicit-prm", beta=0.1)
    assert torch.autograd.gradcheck(lambda a: loss(a, ref, labels, mask), (x,))
    loss(x, r, labels, mask).backward()
    assert r.grad is None  # the reference is frozen


def test_large_rewards_do_not_saturate():
    lp = torch.zeros(1, 4, dtype=F64)
    ref = torch.full((1, 4), -1000.0, dtype=F64)  # r = 0.05 * 4000 = 200
    loss = xent_core.loss("implicit-prm")(lp, ref, torch.tensor([0.0]))
    assert float(loss) == pytest.approx(200.0, rel=1e-12)  # BCELoss would clamp at 100


def test_process_rewards_steps_single_accumulative_min_sum():
    lp = torch.tensor([[-1.0, -1.0, -1.0, -1.0, -1.0]], dtype=F64)
    ref = torch.tensor([[-2.0, -1.0, -3.0, -1.0, -0.5]], dtype=F64)  # diffs 1, 0, 2, 0, -0.5
    ends = torch.tensor([[1, 3, 4, -1]])
    out = implicit_process_rewards(lp, ref, beta=1.0, step_ends=ends)
    torch.testing.assert_close(out.token, torch.tensor([[1.0, 1.0, 3.0, 3.0, 2.5]], dtype=F64))
    torch.testing.assert_close(out.steps, torch.tensor([[1.0, 2.0, -0.5, 0.0]], dtype=F64))
    assert float(out.score) == -0.5
    acc = implicit_process_rewards(
        lp, ref, beta=1.0, step_ends=ends, mode="accumulative", aggregate="sum"
    )
    torch.testing.assert_close(acc.steps, torch.tensor([[1.0, 3.0, 2.5, 0.0]], dtype=F64))
    assert float(acc.score) == pytest.approx(6.5)


def test_implicit_prm_errors():
    lp, ref = torch.tensor(LP), torch.tensor(REF)
    loss = xent_core.loss("implicit-prm")
    with pytest.raises(BadInputError, match="labels"):
        loss(lp, ref, torch.tensor([1.0]))
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        loss(lp, ref, torch.tensor([2.0, 0.0]))
    with pytest.raises(BadInputError, match="shape"):
        loss(lp, ref[:, :2], torch.tensor([1.0, 0.0]))
    with pytest.raises(BadInputError, match="NaN"):
        loss(torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2), torch.tensor([1.0]))
    with pytest.raises(BadInputError, match="step_ends"):
        implicit_process_rewards(lp, ref, step_ends=torch.tensor([[5], [0]]))
    with pytest.raises(BadParameterError):
        xent_core.loss("implicit-prm", beta=0.0)
    with pytest.raises(BadParameterError):
        implicit_process_rewards(lp, ref, mode="per-token")


# ------------------------------------------------------------------------------ clip-cov, kl-cov
def policy_case(seed: int, b: int = 4, t: int = 13):
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(b, t, generator=g, dtype=F64) * 3
    old = lp + torch.randn(b, t, generator=g, dtype=F64) * 0.3
    adv = torch.randn(b, t, generator=g, dtype=F64) * 2
    mask = torch.rand(b, t, generator=g) > 0.25
    return lp, old, adv, mask


def agg_oracle(mat, mask, mode):
    """The reference's agg_loss on python lists."""
    rows = [[v for v, m in zip(r, mr) if m] for r, mr in zip(mat, mask)]
    if mode == "token-mean":
        flat = [v for r in rows for v in r]
        return sum(flat) / len(flat)
    if mode == "seq-mean-token-sum":
        return sum(sum(r) for r in rows) / len(rows)
    return sum(sum(r) / len(r) for r in rows if r) / sum(1 for r in rows if r)


def cov_oracle(lp, adv, mask):
    vals = [(i, j) for i in range(len(lp)) for j in range(len(lp[0])) if mask[i][j]]
    a_mean = sum(adv[i][j] for i, j in vals) / len(vals)
    l_mean = sum(lp[i][j] for i, j in vals) / len(vals)
    return {(i, j): (adv[i][j] - a_mean) * (lp[i][j] - l_mean) for i, j in vals}


def kl_cov_oracle(lp, old, adv, mask, k_ratio, coef, mode):
    cov = cov_oracle(lp, adv, mask)
    k = max(1, int(k_ratio * len(cov)))
    top = sorted(cov, key=cov.get, reverse=True)[:k]
    mat = [[-a * math.exp(x - o) for x, o, a in zip(*row)] for row in zip(lp, old, adv)]
    for i, j in top:
        mat[i][j] += coef * abs(lp[i][j] - old[i][j])
    return agg_oracle(mat, mask, mode), top


def clip_cov_oracle(lp, old, adv, mask, lb, ub, eps_low, eps_high, mode):
    """Every eligible token cut (the tests choose r so that all of them are picked)."""
    cov = cov_oracle(lp, adv, mask)
    mat, eligible = [], []
    for i, row in enumerate(zip(lp, old, adv)):
        out = []
        for j, (x, o, a) in enumerate(zip(*row)):
            ratio = math.exp(x - o)
            pg1, pg2 = -a * ratio, -a * min(max(ratio, 1 - eps_low), 1 + eps_high)
            if mask[i][j] and not pg2 > pg1 and lb < cov[(i, j)] < ub:
                eligible.append((i, j))
                out.append(0.0)
            else:
                out.append(max(pg1, pg2))
        mat.append(out)
    return agg_oracle(mat, mask, mode), eligible


def test_kl_cov_spec_value():
    lp = torch.tensor([[-0.1, -2.0, -0.5, -1.0]], dtype=F64, requires_grad=True)
    old = torch.tensor([[-0.2, -1.8, -0.5, -1.3]], dtype=F64)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=F64)
    cov = centred_covariance(lp, adv, torch.ones_like(adv, dtype=torch.bool))
    torch.testing.assert_close(cov, torch.tensor([[0.8, -1.1, -0.4, 0.1]], dtype=F64))
    loss = xent_core.loss("kl-cov", kl_cov_ratio=0.25)
    assert float(loss(lp, old, adv).detach()) == pytest.approx(0.1314892841, abs=1e-10)
    assert loss.last_selected.tolist() == [[True, False, False, False]]
    plain = xent_core.loss("kl-cov", kl_cov_ratio=0.25, ppo_kl_coef=0.0)(lp, old, adv)
    assert float(plain.detach()) == pytest.approx(0.1064892841, abs=1e-10)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_kl_cov_random_vs_oracle_and_helper(mode):
    lp, old, adv, mask = policy_case(1)
    want, top = kl_cov_oracle(
        lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.1, 0.7, mode
    )
    loss = xent_core.loss("kl-cov", kl_cov_ratio=0.1, ppo_kl_coef=0.7, loss_agg_mode=mode)
    assert float(loss(lp, old, adv, mask)) == pytest.approx(want, rel=1e-12)
    picked = {tuple(ij) for ij in torch.nonzero(loss.last_selected).tolist()}
    assert picked == set(top)
    assert torch.equal(loss.last_selected, kl_cov_mask(lp, adv, mask, k_ratio=0.1))


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_clip_cov_random_vs_oracle(mode):
    lp, old, adv, mask = policy_case(2, b=5, t=17)
    want, eligible = clip_cov_oracle(
        lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, 1.5, 0.2, 0.28, mode
    )
    assert 0 < len(eligible) < int(mask.sum())
    loss = xent_core.loss("clip-cov", clip_cov_ratio=1.0, clip_cov_lb=0.2, clip_cov_ub=1.5,
                          clip_ratio_high=0.28, loss_agg_mode=mode)  # fmt: skip
    assert float(loss(lp, old, adv, mask)) == pytest.approx(want, rel=1e-12)
    assert {tuple(ij) for ij in torch.nonzero(loss.last_selected).tolist()} == set(eligible)


def test_clip_cov_random_pick_matches_the_aligned_helper_and_excludes_ppo_clipped():
    lp, old, adv, mask = policy_case(3, b=6, t=40)
    _, eligible = clip_cov_oracle(
        lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.1, 5.0, 0.2, 0.2, "token-mean"
    )
    ratio = 0.02
    take = max(1, int(ratio * int(mask.sum())))
    assert len(eligible) > take  # the pick is random
    loss = xent_core.loss("clip-cov", clip_cov_ratio=ratio, clip_cov_lb=0.1,
                          generator=torch.Generator().manual_seed(7))  # fmt: skip
    loss(lp, old, adv, mask)
    sel = loss.last_selected
    assert int(sel.sum()) == take and {tuple(ij) for ij in torch.nonzero(sel).tolist()} <= set(
        eligible
    )
    helper = clip_cov_mask(lp, adv, mask, clip_ratio=ratio, cov_low=0.1, cov_high=5.0,
                           old_logprobs=old, generator=torch.Generator().manual_seed(7))  # fmt: skip
    assert torch.equal(sel, helper)
    # without old_logprobs the helper does not know which tokens PPO clips
    loose = clip_cov_mask(lp, adv, mask, clip_ratio=1.0, cov_low=0.1, cov_high=5.0)
    assert int(loose.sum()) > len(eligible)


def test_gradcheck():
    lp, old, adv, mask = policy_case(4, b=2, t=5)
    x = lp.clone().requires_grad_(True)
    kl = xent_core.loss("kl-cov", kl_cov_ratio=0.3)
    assert torch.autograd.gradcheck(lambda a: kl(a, old, adv, mask), (x,))
    # clip-cov's pick is random: a ratio of 1 cuts every eligible token, so it is fixed
    clip = xent_core.loss("clip-cov", clip_cov_ratio=1.0, clip_cov_lb=0.0, clip_cov_ub=0.5)
    assert torch.autograd.gradcheck(lambda a: clip(a, old, adv, mask), (x,))


@pytest.mark.parametrize("name, params", [("kl-cov", {"kl_cov_ratio": 0.3}),
                                          ("clip-cov", {"clip_cov_ratio": 1.0})])  # fmt: skip
def test_reductions_and_empty_mask(name, params):
    lp, old, adv, mask = policy_case(4, b=2, t=5)
    per = xent_core.loss(name, **params, reduction="none")(lp, old, adv, mask)
    assert per.shape == lp.shape and bool((per[~mask] == 0).all())
    total = xent_core.loss(name, **params, reduction="sum")(lp, old, adv, mask)
    assert float(total) == pytest.approx(float(per.sum()))
    mean = xent_core.loss(name, **params)(lp, old, adv, mask)
    assert float(mean) == pytest.approx(float(per.sum() / mask.sum()))
    z = lp.clone().requires_grad_(True)
    empty = xent_core.loss(name, **params)(z, old, adv, torch.zeros_like(mask))
    empty.backward()
    assert float(empty.detach()) == 0 and bool((z.grad == 0).all())


def test_per_sequence_advantages_broadcast():
    lp, old, adv, mask = policy_case(6)
    seq_adv = adv[:, 0]
    a = xent_core.loss("kl-cov", kl_cov_ratio=0.3)(lp, old, seq_adv, mask)
    b = xent_core.loss("kl-cov", kl_cov_ratio=0.3)(lp, old, seq_adv[:, None].expand_as(lp), mask)
    assert float(a) == pytest.approx(float(b))


def test_policy_loss_errors():
    lp, old, adv, mask = policy_case(5)
    loss = xent_core.loss("kl-cov")
    with pytest.raises(BadInputError, match="old_logprobs"):
        loss(lp, old[:, :-1], adv, mask)
    with pytest.raises(BadInputError, match="advantages"):
        loss(lp, old, adv[:, :-1], mask)
    with pytest.raises(BadInputError, match="mask"):
        loss(lp, old, adv, mask[:1])
    with pytest.raises(BadInputError, match="NaN"):
        bad = lp.clone()
        bad[mask] = float("nan")
        loss(bad, old, adv, mask)
    for name, bad in (("kl-cov", {"kl_cov_ratio": 0.0}), ("kl-cov", {"loss_agg_mode": "mean"}),
                      ("clip-cov", {"clip_cov_lb": 5.0, "clip_cov_ub": 1.0}),
                      ("clip-cov", {"generator": 3})):  # fmt: skip
        with pytest.raises(BadParameterError):
            xent_core.loss(name, **bad)
