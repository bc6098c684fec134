"""ignore_index masks the soft terms; num_items makes gradient accumulation exact."""

from __future__ import annotations

import pytest
import torch

import xent_core

N, C = 12, 7
CASES = [
    ("kd", {"temperature": 2.0}),
    ("jsd", {"beta": 0.4}),
    ("tvd", {}),
    ("dkd", {}),
    ("pld", {}),
]
NEEDS_TARGETS = {"dkd", "pld"}


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, C, generator=g, dtype=torch.float64)
    t = torch.randn(N, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=g)
    y[[1, 4, 5, 10]] = -100
    return s, t, y


def _call(loss, name, s, t, y, **kw):
    if name in NEEDS_TARGETS:
        return loss(s, y, teacher_logits=t, **kw)
    return loss(s, t, targets=y, **kw)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_ignored_rows_do_not_count_and_get_no_gradient(name, params):
    s, t, y = _inputs(0)
    keep = y != -100
    x = s.clone().requires_grad_()
    loss = xent_core.loss(name, **params)
    out = _call(loss, name, x, t, y)
    (g,) = torch.autograd.grad(out, x)
    assert bool((g[~keep] == 0).all()) and float(g[keep].abs().sum()) > 0
    kept = _call(loss, name, s[keep], t[keep], y[keep])
    torch.testing.assert_close(out.detach(), kept)
    # the soft term of an ignored row is really masked: garbage there changes nothing
    t_bad = t.clone()
    t_bad[~keep] = 1e3 * torch.randn_like(t_bad[~keep])
    torch.testing.assert_close(_call(loss, name, s, t_bad, y), out.detach())


@pytest.mark.parametrize(("name", "params"), CASES)
def test_everything_ignored_is_zero_with_zero_gradient(name, params):
    s, t, y = _inputs(1)
    y = torch.full_like(y, -100)
    x = s.clone().requires_grad_()
    for reduction in ("mean", "sum"):
        out = _call(xent_core.loss(name, reduction=reduction, **params), name, x, t, y)
        (g,) = torch.autograd.grad(out, x)
        assert (
            float(out.detach()) == 0.0 and bool((g == 0).all()) and not bool(torch.isnan(g).any())
        )


@pytest.mark.parametrize(("name", "params"), CASES)
def test_num_items_makes_micro_batches_add_up_to_the_full_batch_mean(name, params):
    s, t, y = _inputs(2)
    loss = xent_core.loss(name, **params)
    x = s.clone().requires_grad_()
    full = _call(loss, name, x, t, y)
    (g_full,) = torch.autograd.grad(full, x)
    total = int((y != -100).sum())
    x2 = s.clone().requires_grad_()
    parts = [slice(0, 5), slice(5, 12)]
    acc = sum(_call(loss, name, x2[p], t[p], y[p], num_items=total) for p in parts)
    (g_acc,) = torch.autograd.grad(acc, x2)
    torch.testing.assert_close(acc, full)
    torch.testing.assert_close(g_acc, g_full)
    # without num_items the micro-batch means do not add up to the full mean
    naive = sum(_call(loss, name, s[p], t[p], y[p]) for p in parts) / len(parts)
    assert abs(float(naive) - float(full.detach())) > 1e-6


def test_num_items_accepts_a_tensor_and_only_affects_mean():
    s, t, y = _inputs(3)
    kd_sum = xent_core.loss("kd", reduction="sum")(s, t, targets=y)
    kd_mean = xent_core.loss("kd")(s, t, targets=y, num_items=torch.tensor(20))
    torch.testing.assert_close(kd_mean, kd_sum / 20)
    torch.testing.assert_close(
        xent_core.loss("kd", reduction="sum")(s, t, targets=y, num_items=20), kd_sum
    )
    # dist couples tokens (intra-class term per micro-batch), but num_items still sets the divisor
    d_sum = xent_core.loss("dist", reduction="sum")(s, t, targets=y)
    torch.testing.assert_close(xent_core.loss("dist")(s, t, targets=y, num_items=20), d_sum / 20)


# Regression: cross-entropy takes probability targets (mixup, cutmix); the mask-only
# distillation losses must not refuse them when they share the ``targets`` input in a stack.


def _soft_batch():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 7, generator=g)
    t = torch.randn(2, 3, 7, generator=g)
    q = torch.softmax(torch.randn(2, 3, 7, generator=g), -1)
    return s, t, q


@pytest.mark.parametrize("name", ["kd", "jsd", "tvd", "dist"])
def test_probability_targets_mask_nothing(name):
    s, t, q = _soft_batch()
    loss = xent_core.loss(name, temperature=2.0)
    torch.testing.assert_close(loss(s, teacher_logits=t, targets=q), loss(s, teacher_logits=t))


def test_stack_cross_entropy_plus_kd_with_probability_targets():
    s, t, q = _soft_batch()
    stack = xent_core.stack("cross-entropy(label_smoothing=0.1) + 0.5*kd(temperature=2)")
    got = stack(logits=s, targets=q, teacher_logits=t)
    ce = xent_core.loss("cross-entropy", label_smoothing=0.1)(s, q)
    kd = xent_core.loss("kd", temperature=2.0)(s, teacher_logits=t)
    got_value = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(got_value, ce + 0.5 * kd)


def test_linear_kd_probability_targets_mask_nothing():
    g = torch.Generator().manual_seed(1)
    h, th = torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)
    w, tw = torch.randn(9, 4, generator=g), torch.randn(9, 3, generator=g)
    q = torch.softmax(torch.randn(5, 9, generator=g), -1)
    loss = xent_core.loss("linear-kd")
    torch.testing.assert_close(loss(h, w, th, tw, targets=q), loss(h, w, th, tw))


@pytest.mark.parametrize("name", ["dkd", "pld"])
def test_losses_that_need_class_ids_still_refuse_probabilities(name):
    s, t, q = _soft_batch()
    with pytest.raises(xent_core.BadInputError, match="integer class ids"):
        xent_core.loss(name)(s, teacher_logits=t, targets=q)


def test_probability_targets_of_the_wrong_shape_are_refused():
    s, t, q = _soft_batch()
    with pytest.raises(xent_core.BadInputError, match="shape"):
        xent_core.loss("kd")(s, teacher_logits=t, targets=q[:, :2])
