"""cross-entropy takes probability targets (mixup, cutmix); the mask-only divergences must not
refuse them when they share the ``targets`` input in a stack."""

from __future__ import annotations

import pytest
import torch

import xent_core


def _batch():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 7, generator=g)
    t = torch.randn(2, 3, 7, generator=g)
    q = torch.softmax(torch.randn(2, 3, 7, generator=g), -1)
    return s, t, q


@pytest.mark.parametrize("name", ["kd", "jsd", "tvd", "dist"])
def test_probability_targets_mask_nothing(name):
    s, t, q = _batch()
    loss = xent_core.loss(name, temperature=2.0)
    torch.testing.assert_close(loss(s, teacher_logits=t, targets=q), loss(s, teacher_logits=t))


def test_stack_cross_entropy_plus_kd_with_probability_targets():
    s, t, q = _batch()
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
    s, t, q = _batch()
    with pytest.raises(xent_core.BadInputError, match="integer class ids"):
        xent_core.loss(name)(s, teacher_logits=t, targets=q)


def test_probability_targets_of_the_wrong_shape_are_refused():
    s, t, q = _batch()
    with pytest.raises(xent_core.BadInputError, match="shape"):
        xent_core.loss("kd")(s, teacher_logits=t, targets=q[:, :2])
