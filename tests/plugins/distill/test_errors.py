"""Bad inputs and parameters raise XentError subclasses with a message saying what was expected."""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError, XentError


def _st(n=4, c=5, ct=None):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g), torch.randn(n, ct or c, generator=g)


def test_mismatched_vocab_sizes_error_or_truncate():
    s, t = _st(c=6, ct=8)
    with pytest.raises(BadInputError, match="vocab_align"):
        xent_core.loss("kd")(s, t)
    got = xent_core.loss("kd", vocab_align="truncate")(s, t)
    torch.testing.assert_close(got, xent_core.loss("kd")(s, t[:, :6]))
    y = torch.tensor([0, 7, 1, 2])
    with pytest.raises(BadInputError, match="aligned vocabulary"):
        xent_core.loss("pld", vocab_align="truncate")(torch.randn(4, 8), y, torch.randn(4, 6))


@pytest.mark.parametrize("name", ["kd", "jsd", "tvd", "dist", "reverse-kl"])
def test_nan_or_posinf_teacher_logits(name):
    s, t = _st()
    for bad in (float("nan"), float("inf")):
        t2 = t.clone()
        t2[1, 2] = bad
        with pytest.raises(BadInputError, match="NaN"):
            xent_core.loss(name)(s, t2)
    t3 = t.clone()
    t3[0] = float("-inf")
    with pytest.raises(BadInputError, match="entirely -inf"):
        xent_core.loss(name)(s, t3)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "2", True])
@pytest.mark.parametrize("name", ["kd", "jsd", "dkd", "pld", "linear-kd"])
def test_temperature_must_be_positive(name, bad):
    with pytest.raises(BadParameterError, match="temperature"):
        xent_core.loss(name, temperature=bad)


def test_bad_parameters():
    with pytest.raises(BadParameterError, match="beta"):
        xent_core.loss("jsd", beta=1.5)
    with pytest.raises(BadParameterError, match="alpha"):
        xent_core.loss("skew-kl", alpha=-0.1)
    with pytest.raises(BadParameterError, match="reduction"):
        xent_core.loss("kd", reduction="avg")
    with pytest.raises(BadParameterError, match="tail"):
        xent_core.loss("kd", tail="drop")
    with pytest.raises(BadParameterError, match="per-token"):
        xent_core.loss("dist", reduction="none")
    with pytest.raises(BadParameterError, match="top_k"):
        xent_core.loss("pld", top_k=0)
    with pytest.raises(BadParameterError, match="softcap"):
        xent_core.loss("linear-kd", softcap=0.0)
    with pytest.raises(BadParameterError, match="chunk_size"):
        xent_core.loss("linear-jsd", chunk_size=0)
    with pytest.raises(BadParameterError, match="valid parameters"):
        xent_core.loss("kd", temprature=2)


def test_wrong_shapes_and_types():
    s, t = _st()
    with pytest.raises(BadInputError, match="leading shape"):
        xent_core.loss("kd")(s, t[:3])
    with pytest.raises(BadInputError, match="targets has shape"):
        xent_core.loss("kd")(s, t, targets=torch.zeros(3, dtype=torch.long))
    with pytest.raises(BadInputError, match="integer class ids"):
        xent_core.loss("kd")(s, t, targets=torch.zeros(4))
    with pytest.raises(BadInputError, match="floating-point"):
        xent_core.loss("kd")(s.long(), t)
    with pytest.raises(BadInputError, match="no teacher"):
        xent_core.loss("kd")(s)
    with pytest.raises(BadInputError, match="not both"):
        xent_core.loss("kd")(
            s,
            t,
            teacher_topk_ids=torch.zeros(4, 2, dtype=torch.long),
            teacher_topk_logprobs=torch.zeros(4, 2),
        )
    with pytest.raises(BadInputError, match=r"outside \[0, 5\)"):
        xent_core.loss("dkd")(s, torch.tensor([0, 1, 9, 2]), t)
    with pytest.raises(BadInputError, match="num_items"):
        xent_core.loss("kd")(s, t, num_items=-1)


def test_bad_topk_teachers():
    s, _ = _st()
    ids = torch.tensor([[0, 1]] * 4)
    lp = torch.log(torch.tensor([[0.5, 0.3]] * 4))
    kd = xent_core.loss("kd")
    with pytest.raises(BadInputError, match="both"):
        kd(s, teacher_topk_ids=ids)
    with pytest.raises(BadInputError, match="repeat"):
        kd(s, teacher_topk_ids=torch.tensor([[0, 0]] * 4), teacher_topk_logprobs=lp)
    with pytest.raises(BadInputError, match="outside"):
        kd(s, teacher_topk_ids=ids + 4, teacher_topk_logprobs=lp)
    with pytest.raises(BadInputError, match="more than 1"):
        kd(s, teacher_topk_ids=ids, teacher_topk_logprobs=torch.log(torch.tensor([[0.8, 0.7]] * 4)))
    with pytest.raises(BadInputError, match="<= 0"):
        kd(s, teacher_topk_ids=ids, teacher_topk_logprobs=lp + 1.0)
    with pytest.raises(BadInputError, match="NaN"):
        kd(s, teacher_topk_ids=ids, teacher_topk_logprobs=torch.full((4, 2), float("nan")))
    with pytest.raises(BadInputError, match="same shape"):
        kd(s, teacher_topk_ids=ids, teacher_topk_logprobs=lp[:, :1])


def test_linear_bad_inputs():
    h, w = torch.randn(6, 4), torch.randn(9, 4)
    th, tw = torch.randn(6, 3), torch.randn(9, 3)
    loss = xent_core.loss("linear-kd")
    with pytest.raises(BadInputError, match="vocab_align"):
        loss(h, w, th, torch.randn(11, 3))
    with pytest.raises(BadInputError, match="expected"):
        loss(h, torch.randn(9, 5), th, tw)
    with pytest.raises(BadInputError, match="leading shape"):
        loss(h, w, th[:5], tw)
    with pytest.raises(BadInputError, match="NaN"):
        loss(h, w, th, tw.masked_fill(tw > 1, float("nan")))
    with pytest.raises(BadInputError, match="bias"):
        loss(h, w, th, tw, bias=torch.randn(8))
    assert issubclass(BadInputError, XentError)
