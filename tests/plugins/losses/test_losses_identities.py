"""Exact identities and closed forms of the cross-entropy family."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from xent_losses.hl_gauss import bin_centers, hl_gauss_predict, hl_gauss_target
from xent_losses.ldr_kl import ldr_kl_loss
from xent_losses.two_hot import support_atoms, two_hot_predict, two_hot_target

import xent_core


def _inputs(n=13, c=7, seed=0, dtype=torch.float64, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=gen, dtype=torch.float64) * scale).to(dtype)
    targets = torch.randint(0, c, (n,), generator=gen)
    targets[2] = -100
    return logits, targets


def _p_y(logits, targets):
    ok = targets != -100
    return torch.softmax(logits[ok], -1).gather(1, targets[ok][:, None]).squeeze(1)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_ce_identities(dtype):
    logits, targets = _inputs(dtype=dtype)
    ce = F.cross_entropy(logits, targets, reduction="none")
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    for name, params in [
        ("cross-entropy", {}),
        ("comp-sum", {"tau": 1.0}),
        ("focal", {"gamma": 0.0}),
        ("poly1", {"epsilon": 0.0}),
        ("pass-at-n", {"n": 1}),
        ("generalized-ce", {"q": 0.0}),
    ]:
        got = xent_core.loss(name, reduction="none", **params)(logits=logits, targets=targets)
        torch.testing.assert_close(got, ce.to(got.dtype), **tol, msg=f"{name}{params} != CE")


def test_comp_sum_tau_two_is_one_minus_p_and_family_members():
    logits, targets = _inputs()
    p = _p_y(logits, targets)
    ok = targets != -100
    two = xent_core.loss("comp-sum", tau=2.0, reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(two[ok], 1 - p, rtol=1e-12, atol=1e-14)
    mae = xent_core.loss("mae", reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(mae, two, rtol=0, atol=0)
    gce1 = xent_core.loss("generalized-ce", q=1.0, reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(gce1, two, rtol=1e-12, atol=1e-14)
    gce = xent_core.loss("generalized-ce", q=0.3, reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(gce[ok], (1 - p**0.3) / 0.3, rtol=1e-11, atol=1e-13)
    zero = xent_core.loss("comp-sum", tau=0.0, reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(zero[ok], 1 / p - 1, rtol=1e-11, atol=1e-13)  # sum-exponential loss
    # continuous through tau = 1
    near = xent_core.loss("comp-sum", tau=1.0 + 1e-7, reduction="none")(
        logits=logits, targets=targets
    )
    ce = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(near, ce, rtol=1e-6, atol=1e-9)


def test_comp_sum_is_stable_in_float32_for_confident_and_hopeless_items():
    logits = torch.tensor([[40.0, 0.0, -5.0], [-30.0, 0.0, 1.0]])
    targets = torch.tensor([0, 0])
    for tau in (0.5, 1.0, 1.3, 2.0):
        x = logits.clone().requires_grad_(True)
        out = xent_core.loss("comp-sum", tau=tau, reduction="none")(logits=x, targets=targets)
        out.sum().backward()
        ref = xent_core.loss("comp-sum", tau=tau, reduction="none")(
            logits=logits.double(), targets=targets
        )
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-30)


def test_mae_is_half_the_l1_distance_to_one_hot():
    logits, targets = _inputs()
    ok = targets != -100
    l1 = (F.one_hot(targets[ok], 7).double() - torch.softmax(logits[ok], -1)).abs().sum(-1)
    mae = xent_core.loss("mae", reduction="none")(logits=logits, targets=targets)
    torch.testing.assert_close(mae[ok], l1 / 2, rtol=1e-12, atol=1e-14)


def test_poly1_with_probability_targets_at_epsilon_zero_is_soft_ce():
    logits, _ = _inputs()
    q = torch.softmax(torch.randn(13, 7, dtype=torch.float64), -1)
    got = xent_core.loss("poly1", epsilon=0.0)(logits=logits, targets=q)
    torch.testing.assert_close(got, F.cross_entropy(logits, q), rtol=1e-12, atol=1e-14)


def test_cross_entropy_matches_torch_with_all_options():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 6, generator=gen)
    targets = torch.randint(0, 6, (2, 5), generator=gen)
    targets[0, 1] = 3
    targets[1, 4] = -1
    weight = [0.3, 1.0, 2.0, 0.0, 1.5, 0.7]
    for reduction in ("mean", "sum", "none"):
        got = xent_core.loss(
            "cross-entropy",
            weight=weight,
            label_smoothing=0.15,
            ignore_index=-1,
            reduction=reduction,
        )(logits=logits, targets=targets)
        ref = F.cross_entropy(
            logits.permute(0, 2, 1),
            targets,
            weight=torch.tensor(weight),
            label_smoothing=0.15,
            ignore_index=-1,
            reduction=reduction,
        )
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-7)


def test_cross_entropy_z_loss_equals_ce_plus_z_loss_term():
    logits, targets = _inputs()
    both = xent_core.loss("cross-entropy", z_loss=1e-2)(logits=logits, targets=targets)
    stack = xent_core.stack("cross-entropy + 0.01*z-loss(coefficient=1.0)")
    torch.testing.assert_close(both, stack(logits=logits, targets=targets), rtol=1e-13, atol=0)
    ok = targets != -100
    lse = torch.logsumexp(logits[ok], -1)
    torch.testing.assert_close(
        both, F.cross_entropy(logits, targets) + 1e-2 * (lse**2).mean(), rtol=1e-13, atol=0
    )


def test_softcap_bounds_logits_and_temperature_divides():
    logits = torch.tensor([[100.0, -100.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([1])
    got = xent_core.loss("cross-entropy", softcap=5.0, temperature=2.0)(
        logits=logits, targets=targets
    )
    capped = 5.0 * torch.tanh(logits / 5.0) / 2.0
    torch.testing.assert_close(got, F.cross_entropy(capped, targets))
    assert got < 5.0 + math.log(
        3
    )  # a cap of 5 and temperature 2 bound the loss by 2 * 5 / 2 + log C


def test_ldr_kl_special_cases():
    logits, targets = _inputs()
    ce = F.cross_entropy(logits, targets, reduction="none")
    ok = targets != -100
    # margin 0, lam 1, raw scores: cross-entropy - log C
    got = ldr_kl_loss(logits, targets, margin=0.0, lam=1.0, normalize="none", reduction="none")
    torch.testing.assert_close(got[ok], ce[ok] - math.log(7), rtol=1e-12, atol=1e-12)
    # lam = T: T * CE(logits / T) - T log C (temperature-scaled CE)
    t = 2.5
    got = ldr_kl_loss(logits, targets, margin=0.0, lam=t, normalize="none", reduction="none")
    ref = t * F.cross_entropy(logits / t, targets, reduction="none") - t * math.log(7)
    torch.testing.assert_close(got[ok], ref[ok], rtol=1e-12, atol=1e-12)
    # lam -> 0: Crammer-Singer hinge max_k (margin [k != y] + f_k - f_y); lam -> inf: mean of gaps
    m = 0.4
    gaps = (
        m * (1 - F.one_hot(targets.clamp_min(0), 7))
        + logits
        - logits.gather(1, targets.clamp_min(0)[:, None])
    )
    small = ldr_kl_loss(logits, targets, margin=m, lam=1e-4, normalize="none", reduction="none")
    torch.testing.assert_close(small[ok], gaps.max(-1).values[ok], rtol=0, atol=1e-3)
    big = ldr_kl_loss(logits, targets, margin=m, lam=1e7, normalize="none", reduction="none")
    torch.testing.assert_close(big[ok], gaps.mean(-1)[ok], rtol=1e-5, atol=1e-6)


def test_ldr_kl_accepts_a_per_item_temperature():
    logits, targets = _inputs()
    lam = torch.rand(13, dtype=torch.float64) * 3 + 0.2
    got = ldr_kl_loss(logits, targets, margin=0.2, lam=lam, reduction="none")
    for i in (0, 5, 12):
        one = ldr_kl_loss(
            logits[i : i + 1], targets[i : i + 1], margin=0.2, lam=float(lam[i]), reduction="none"
        )
        torch.testing.assert_close(got[i : i + 1], one)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: ldr_kl_loss(z, targets, margin=0.2, lam=lam, reduction="none"), (x,)
    )


def test_emo_with_identity_embeddings_is_one_minus_q_y():
    logits, targets = _inputs()
    ok = targets != -100
    eye = torch.eye(7, dtype=torch.float64)
    demd = xent_core.loss("emo", mix="none", reduction="none")(
        logits=logits, targets=targets, classifier=eye
    )
    torch.testing.assert_close(demd[ok], 1 - _p_y(logits, targets), rtol=1e-12, atol=1e-14)
    # the fixed-embedding form gives the same, and scaling the rows changes nothing (cosine cost)
    fixed = xent_core.loss("emo", embedding=3.0 * eye, mix="none", reduction="none")
    torch.testing.assert_close(fixed(logits=logits, targets=targets), demd, rtol=1e-12, atol=1e-14)


def test_emo_dynamic_mix_value_is_ce_and_gradient_adds_scaled_demd():
    logits, targets = _inputs()
    classifier = torch.randn(7, 4, dtype=torch.float64)
    emo = xent_core.loss("emo")
    x = logits.clone().requires_grad_(True)
    value = emo(logits=x, targets=targets, classifier=classifier)
    torch.testing.assert_close(value, F.cross_entropy(logits, targets), rtol=1e-8, atol=0)
    (g,) = torch.autograd.grad(value, x)
    # reference gradient: 0.5 * (dCE + r * dDEMD) per item, r = CE / DEMD held fixed
    x2 = logits.clone().requires_grad_(True)
    ce = F.cross_entropy(x2, targets, reduction="none")
    demd = xent_core.loss("emo", mix="none", reduction="none")(
        logits=x2, targets=targets, classifier=classifier
    )
    ok = targets != -100
    r = (ce / demd).detach()
    total = (0.5 * (ce + r * demd))[ok].sum() / ok.sum()
    (g_ref,) = torch.autograd.grad(total, x2)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)
    # the classifier is a fixed cost: no gradient flows into it
    c = classifier.clone().requires_grad_(True)
    emo(logits=x, targets=targets, classifier=c).backward()
    assert c.grad is None


def test_pass_at_n_gradient_is_ce_gradient_scaled_by_coverage_factor():
    logits, targets = _inputs(n=6, c=5)
    targets[2] = 1
    n = 6
    x = logits.clone().requires_grad_(True)
    loss = xent_core.loss("pass-at-n", n=n, reduction="sum")(logits=x, targets=targets)
    (g,) = torch.autograd.grad(loss, x)
    p = torch.softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    factor = n * p * (1 - p) ** (n - 1) / (1 - (1 - p) ** n)
    x2 = logits.clone().requires_grad_(True)
    ce = F.cross_entropy(x2, targets, reduction="none")
    (g_ce,) = torch.autograd.grad((factor.detach() * ce).sum(), x2)
    torch.testing.assert_close(g, g_ce, rtol=1e-10, atol=1e-13)
    # limited confidence: below CE, and a confident item contributes (almost) nothing
    assert torch.all(
        xent_core.loss("pass-at-n", n=n, reduction="none")(logits=logits, targets=targets)
        < F.cross_entropy(logits, targets, reduction="none")
    )
    confident = torch.tensor([[12.0, 0.0, 0.0]])
    tiny = xent_core.loss("pass-at-n", n=n)(logits=confident, targets=torch.tensor([0]))
    assert 0 < tiny < 1e-20  # (1 - p)^6 with 1 - p ~ 1e-5, still resolved in float32


def test_hl_gauss_target_is_a_histogram_whose_mean_recovers_the_value():
    vmin, vmax, bins = -3.0, 5.0, 41
    width = (vmax - vmin) / bins
    sigma = 0.75 * width
    values = torch.cat(
        [
            torch.linspace(vmin + 5 * sigma, vmax - 5 * sigma, 97, dtype=torch.float64),
            torch.tensor([vmin, vmax, -10.0, 10.0], dtype=torch.float64),
        ]
    )
    target = hl_gauss_target(values, vmin, vmax, bins)
    assert torch.all(target >= 0)
    torch.testing.assert_close(
        target.sum(-1), torch.ones(len(values), dtype=torch.float64), rtol=0, atol=1e-12
    )
    centers = bin_centers(vmin, vmax, bins, dtype=torch.float64)
    inside = values[:97]
    # 5 sigma inside the support, neither the discretisation of a Gaussian of sigma = 0.75 bins
    # (~exp(-2 pi^2 0.75^2) ~ 1e-5 bins) nor the truncation at the edges moves the mean visibly
    torch.testing.assert_close(target[:97] @ centers, inside, rtol=0, atol=2e-5 * width)
    # the prediction helper inverts the target: softmax(log target) = target
    pred = hl_gauss_predict(target[:97].log(), vmin, vmax)
    torch.testing.assert_close(pred, inside, rtol=0, atol=2e-5 * width)
    # at the edge the renormalised (truncated) Gaussian is biased towards the inside
    assert vmin < float(target[-4] @ centers) < vmin + sigma
    module = xent_core.loss("hl-gauss", vmin=vmin, vmax=vmax, num_bins=bins)
    torch.testing.assert_close(module.predict(target[:97].log()), pred)
    # out-of-support values are clamped: same target as the boundary value
    torch.testing.assert_close(target[-2], target[-4])
    torch.testing.assert_close(target[-1], target[-3])


def test_hl_gauss_loss_is_minimised_by_its_target():
    vmin, vmax, bins = 0.0, 1.0, 21
    values = torch.rand(9, dtype=torch.float64)
    target = hl_gauss_target(values, vmin, vmax, bins)
    loss = xent_core.loss("hl-gauss", vmin=vmin, vmax=vmax, num_bins=bins, reduction="none")
    logits = target.clamp_min(1e-300).log()  # far bins hold exactly 0 mass
    at_target = loss(logits=logits, values=values)
    entropy = -torch.special.xlogy(target, target).sum(-1)
    torch.testing.assert_close(at_target, entropy)  # CE(p, p) = H(p), its minimum
    other = loss(logits=logits + 0.3 * torch.randn(9, bins, dtype=torch.float64), values=values)
    assert torch.all(other > at_target)


def test_two_hot_target_recovers_values_exactly():
    vmin, vmax, bins = -1.0, 2.0, 13
    values = torch.cat(
        [
            torch.rand(50, dtype=torch.float64) * 3 - 1,
            support_atoms(vmin, vmax, bins, dtype=torch.float64),
        ]
    )
    target = two_hot_target(values, vmin, vmax, bins)
    atoms = support_atoms(vmin, vmax, bins, dtype=torch.float64)
    torch.testing.assert_close(target.sum(-1), torch.ones(len(values), dtype=torch.float64))
    torch.testing.assert_close(target @ atoms, values, rtol=0, atol=1e-12)
    nonzero = target > 0
    assert torch.all(nonzero.sum(-1) <= 2)
    idx = [torch.nonzero(row).flatten() for row in nonzero]
    assert all(len(i) == 1 or int(i[1] - i[0]) == 1 for i in idx)  # adjacent atoms only
    torch.testing.assert_close(
        two_hot_predict(target.log(), vmin, vmax), values, rtol=0, atol=1e-12
    )


def test_bias_loss_with_equal_variances_is_scaled_ce():
    logits, targets = _inputs()
    features = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64).repeat(
        13, 1
    )  # same variance
    got = xent_core.loss("bias-loss", alpha=0.3, beta=0.3)(
        logits=logits, targets=targets, features=features
    )
    torch.testing.assert_close(got, (1 - 0.3) * F.cross_entropy(logits, targets))
    # higher variance, higher weight: the max-variance item is weighted exp(alpha) - beta
    features = torch.randn(13, 8, dtype=torch.float64)
    per = xent_core.loss("bias-loss", reduction="none")(
        logits=logits, targets=targets, features=features
    )
    ce = F.cross_entropy(logits, targets, reduction="none")
    var = features.var(-1)
    var[2] = var[targets != -100].min()  # the ignored item does not enter the scaling
    top = int(var.argmax())
    torch.testing.assert_close(per[top], (math.exp(0.3) - 0.3) * ce[top])


def test_dice_prefers_the_right_class_and_reaches_its_floor():
    targets = torch.tensor([0, 1, 2])
    good = torch.eye(3, dtype=torch.float64) * 30
    bad = good[[1, 2, 0]]
    dice = xent_core.loss("dice", alpha=0.0, smooth=1.0, reduction="none")
    assert torch.all(dice(logits=good, targets=targets) < 1e-10)  # perfect prediction: 0
    # all mass on a wrong class: the target class gives 1 - 1/2, the wrong class 1 - 1/(1 + 1)
    torch.testing.assert_close(
        dice(logits=bad, targets=targets), torch.ones(3, dtype=torch.float64), rtol=1e-9, atol=1e-9
    )
