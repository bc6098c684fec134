"""pld against a slow O(C^2) reference, its identities, the top-K truncation and top-k teachers."""

from __future__ import annotations

import pytest
import torch
from distill_refs import pld_slow
from xent_distill.pld import plackett_luce_nll

import xent_core

N, C = 9, 13


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, C, generator=g, dtype=torch.float64) * 2
    t = torch.randn(N, C, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, C, (N,), generator=g)
    return s, t, y


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_pld_matches_slow_reference(temperature):
    s, t, y = _inputs(0)
    got = xent_core.loss("pld", temperature=temperature, reduction="none")(s, y, t)
    torch.testing.assert_close(got, pld_slow(s, t, y, temperature), rtol=1e-10, atol=1e-12)
    mean = xent_core.loss("pld", temperature=temperature)(s.float(), y, t.float())
    assert abs(float(mean) - float(pld_slow(s, t, y, temperature).mean())) < 1e-5


@pytest.mark.parametrize("top_k", [1, 4, C - 2, C - 1, 50])
def test_top_k_truncation_matches_partial_reference(top_k):
    s, t, y = _inputs(1)
    got = xent_core.loss("pld", top_k=top_k, reduction="none")(s, y, t)
    torch.testing.assert_close(got, pld_slow(s, t, y, top_k=top_k), rtol=1e-10, atol=1e-12)


def test_one_hot_teacher_weighting_is_cross_entropy():
    s, t, y = _inputs(2)
    one_hot = torch.full_like(t, float("-inf")).scatter(-1, y[:, None], 0.0)
    ce = torch.nn.functional.cross_entropy(s, y, reduction="none")
    torch.testing.assert_close(xent_core.loss("pld", reduction="none")(s, y, one_hot), ce)
    # the same through the core function with explicit weights alpha = (1, 0, ..., 0)
    order = torch.argsort(t.scatter(-1, y[:, None], float("inf")), dim=-1, descending=True)
    alpha = torch.zeros_like(s)
    alpha[:, 0] = 1.0
    torch.testing.assert_close(plackett_luce_nll(s, order, alpha, covers_all=True), ce)
    # and a real teacher gives something else
    assert float((xent_core.loss("pld", reduction="none")(s, y, t) - ce).abs().max()) > 1e-2


def test_invariant_to_a_constant_added_to_student_logits():
    s, t, y = _inputs(3)
    loss = xent_core.loss("pld", reduction="none")
    shifted = loss(s + torch.randn(N, 1, dtype=torch.float64) * 5, y, t)
    torch.testing.assert_close(shifted, loss(s, y, t), rtol=1e-10, atol=1e-10)
    loss_k = xent_core.loss("pld", top_k=3, reduction="none")
    torch.testing.assert_close(loss_k(s + 7.5, y, t), loss_k(s, y, t), rtol=1e-10, atol=1e-10)


def test_gradcheck_full_truncated_and_topk_teacher():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([2, 0, 5])
    lp, ids = torch.log_softmax(t, -1).topk(3)
    assert torch.autograd.gradcheck(lambda z: xent_core.loss("pld", temperature=2.0)(z, y, t), (s,))
    assert torch.autograd.gradcheck(lambda z: xent_core.loss("pld", top_k=2)(z, y, t), (s,))
    assert torch.autograd.gradcheck(
        lambda z: xent_core.loss("pld")(z, y, teacher_topk_ids=ids, teacher_topk_logprobs=lp), (s,)
    )


def test_topk_teacher_is_truncated_pld_with_given_weights():
    s, t, y = _inputs(5)
    lp_full = torch.log_softmax(t, -1)
    k = 4
    lp, ids = lp_full.topk(k)
    perm = torch.randperm(k)  # the order the ids arrive in does not matter
    got = xent_core.loss("pld", tail="renormalise", reduction="none")(
        s, y, teacher_topk_ids=ids[:, perm], teacher_topk_logprobs=lp[:, perm]
    )
    # reference: list = label then the top-k ids (label dropped if present), weights = the
    # renormalised top-k probabilities, the label weighted 0 when outside the top-k
    want = []
    for i in range(N):
        w_top = torch.softmax(lp[i], -1)
        order = [int(y[i])] + [int(c) for c in ids[i] if int(c) != int(y[i])]
        weights = {int(c): float(w) for c, w in zip(ids[i], w_top)}
        total = 0.0
        for pos, c in enumerate(order):
            remaining = [j for j in range(C) if j not in order[:pos]]
            lse = torch.logsumexp(s[i, remaining], 0)
            total += weights.get(c, 0.0) * float(lse - s[i, c])
        want.append(total)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-10, atol=1e-12)
