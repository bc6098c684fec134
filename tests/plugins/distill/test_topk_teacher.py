"""Top-k teachers: k = C equals the full teacher; k < C follows the documented tail treatment."""

from __future__ import annotations

import pytest
import torch
from distill_refs import coarsen, jsd, kl, probs, tvd

import xent_core

N, C = 7, 10
LOGIT_LOSSES = [
    "kd",
    "reverse-kl",
    "jsd",
    "skew-kl",
    "skew-reverse-kl",
    "tvd",
    "dkd",
    "dist",
    "pld",
]
NEEDS_TARGETS = {"dkd", "pld"}


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, C, generator=g, dtype=torch.float64) * 2
    t = torch.randn(N, C, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, C, (N,), generator=g)
    return s, t, y


def _call(loss, name, s, y, **teacher):
    return loss(s, y, **teacher) if name in NEEDS_TARGETS else loss(s, targets=y, **teacher)


@pytest.mark.parametrize("tail", ["bucket", "renormalise"])
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_k_equal_c_is_the_full_teacher(name, tail):
    s, t, y = _inputs(LOGIT_LOSSES.index(name))
    lp, ids = torch.log_softmax(t / 1.0, -1).topk(C)
    perm = torch.randperm(C)
    params = {"temperature": 2.0, "tail": tail}
    loss = xent_core.loss(name, **params)
    full = _call(loss, name, s, y, teacher_logits=t)
    topk = _call(loss, name, s, y, teacher_topk_ids=ids[:, perm], teacher_topk_logprobs=lp[:, perm])
    torch.testing.assert_close(topk, full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "row_ref"),
    [
        ("kd", lambda p, q: kl(p, q)),
        ("reverse-kl", lambda p, q: kl(q, p)),
        ("jsd", lambda p, q: jsd(p, q, 0.5)),
        ("tvd", tvd),
    ],
)
@pytest.mark.parametrize("tail", ["bucket", "renormalise"])
def test_k_below_c_uses_the_coarsened_support(name, row_ref, tail):
    s, t, _ = _inputs(20)
    k = 4
    p, q = probs(t), probs(s)
    lp, ids = torch.log(p).topk(k)
    params = {"scale_by_t2": False} if name == "kd" else {}
    got = xent_core.loss(name, tail=tail, reduction="none", **params)(
        s, teacher_topk_ids=ids, teacher_topk_logprobs=lp
    )
    want = row_ref(coarsen(p, ids, tail), coarsen(q, ids, tail))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_bucket_at_temperature_tempers_the_tail_as_one_class():
    s, t, _ = _inputs(21)
    k, temp = 3, 2.0
    lp, ids = torch.log_softmax(t, -1).topk(k)
    got = xent_core.loss("kd", temperature=temp, reduction="none")(
        s, teacher_topk_ids=ids, teacher_topk_logprobs=lp
    )
    cells = torch.cat([lp, torch.log1p(-lp.exp().sum(-1, keepdim=True))], -1)
    p_cells = torch.softmax(cells / temp, -1)
    q_cells = coarsen(probs(s, temp), ids, "bucket")
    torch.testing.assert_close(got, temp**2 * kl(p_cells, q_cells), rtol=1e-9, atol=1e-12)


def test_topk_gradients_reach_the_student_and_are_finite():
    s, t, y = _inputs(22)
    lp, ids = torch.log_softmax(t, -1).topk(3)
    x = s.clone().requires_grad_()
    for name in LOGIT_LOSSES:
        out = _call(
            xent_core.loss(name), name, x, y, teacher_topk_ids=ids, teacher_topk_logprobs=lp
        )
        (g,) = torch.autograd.grad(out, x)
        assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0, name


# Regression: top-k teachers stored in bf16/fp16 (rounded log-probabilities) are accepted.


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tail", ["bucket", "renormalise"])
def test_rounded_topk_logprobs_of_a_proper_distribution_are_accepted(dtype, tail):
    g = torch.Generator().manual_seed(0)
    n, c = 64, 50
    t = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    s = torch.randn(n, c, generator=g, dtype=torch.float64)
    lp = torch.log_softmax(t, -1).to(dtype)  # rounding can push sum_k p_k slightly above 1
    assert float(torch.logsumexp(lp.double(), -1).max()) > 1e-3 or dtype == torch.float16
    top = lp.topk(c, -1)
    loss = xent_core.loss("kd", tail=tail)
    got = loss(s, teacher_topk_ids=top.indices, teacher_topk_logprobs=top.values)
    full = loss(s, teacher_logits=t)
    torch.testing.assert_close(got, full, rtol=2e-2, atol=2e-2)


def test_probabilities_clearly_above_one_are_still_refused_in_bf16():
    s = torch.randn(4, 5)
    ids = torch.tensor([[0, 1]] * 4)
    lp = torch.log(torch.tensor([[0.8, 0.7]] * 4)).bfloat16()
    with pytest.raises(xent_core.BadInputError, match="more than 1"):
        xent_core.loss("kd")(s, teacher_topk_ids=ids, teacher_topk_logprobs=lp)
