"""Top-k teachers stored in bf16/fp16 (rounded log-probabilities) are accepted, not refused."""

from __future__ import annotations

import pytest
import torch

import xent_core


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
