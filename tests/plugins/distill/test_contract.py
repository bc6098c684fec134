"""The input and parameter contract the distillation losses share with ``cross-entropy``.

Regression tests: padding rows marked with an id other than ``ignore_index`` (``-1``, ``C``) were
silently counted; ``linear-kd``/``linear-jsd`` checked the teacher but not the student; the raw
JSD at beta = 0 or 1 and ``skew-kl(alpha=1)`` returned a zero detached from the graph; truthy
strings and floats were accepted as flags and integers.
"""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

N, C, D = 7, 6, 4
LOGIT_LOSSES = [
    "kd",
    "reverse-kl",
    "jsd",
    "skew-kl",
    "skew-reverse-kl",
    "tvd",
    "dist",
    "dkd",
    "pld",
]
LINEAR_LOSSES = ["linear-kd", "linear-jsd"]


def _logits():
    g = torch.Generator().manual_seed(5)
    return torch.randn(N, C, generator=g), torch.randn(N, C, generator=g)


def _linear():
    g = torch.Generator().manual_seed(6)
    h, th = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    w, tw = torch.randn(C, D, generator=g), torch.randn(C, D, generator=g)
    return h, w, th, tw


@pytest.mark.parametrize("pad", [-1, C, 10**6])
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_out_of_range_targets_are_refused_like_cross_entropy(name, pad):
    s, t = _logits()
    y = torch.randint(0, C, (N,))
    y[2] = pad
    with pytest.raises(BadInputError):
        xent_core.loss("cross-entropy")(s, y)
    with pytest.raises(BadInputError, match=rf"{pad} is outside \[0, {C}\)"):
        xent_core.loss(name)(s, teacher_logits=t, targets=y)
    with xent_core.input_checks(False):  # unchecked: no error (the caller vouches for them)
        xent_core.loss(name)(s, teacher_logits=t, targets=y.clamp(0, C - 1))


@pytest.mark.parametrize("pad", [-1, C])
@pytest.mark.parametrize("name", LINEAR_LOSSES)
def test_linear_losses_refuse_out_of_range_targets(name, pad):
    h, w, th, tw = _linear()
    y = torch.randint(0, C, (N,))
    y[0] = pad
    with pytest.raises(BadInputError, match="outside"):
        xent_core.loss(name)(h, w, th, tw, targets=y)


def test_padding_marked_with_its_own_ignore_index_is_masked():
    s, t = _logits()
    y = torch.randint(0, C, (N,))
    y[[1, 4]] = -1
    got = xent_core.loss("kd", ignore_index=-1)(s, teacher_logits=t, targets=y)
    keep = y != -1
    torch.testing.assert_close(got, xent_core.loss("kd")(s[keep], teacher_logits=t[keep]))


@pytest.mark.parametrize("name", LINEAR_LOSSES)
@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("hidden", float("nan")),
        ("hidden", float("inf")),
        ("classifier", float("nan")),
        ("classifier", float("-inf")),
        ("bias", float("nan")),
        ("bias", float("inf")),
    ],
)
def test_linear_losses_check_the_student(name, where, bad):
    h, w, th, tw = _linear()
    b = torch.zeros(C)
    {"hidden": h, "classifier": w, "bias": b}[where][1] = bad
    with pytest.raises(BadInputError, match=where):
        xent_core.loss(name)(h, w, th, tw, bias=b)


@pytest.mark.parametrize("name", LINEAR_LOSSES)
def test_linear_losses_refuse_student_logits_that_overflow(name):
    h, w, th, tw = _linear()
    with pytest.raises(BadInputError, match="student logits"):
        xent_core.loss(name)(h * 1e30, w * 1e10, th, tw)  # finite inputs, logits past fp32


@pytest.mark.parametrize("name", LINEAR_LOSSES)
def test_linear_losses_accept_a_minus_inf_student_bias(name):
    h, w, th, tw = _linear()
    b = torch.zeros(C)
    b[-1] = float("-inf")  # a masked (padded) vocabulary entry
    assert torch.isfinite(xent_core.loss(name)(h, w, th, tw, bias=b, teacher_bias=b))


ZERO_CASES = [
    ("jsd", {"beta": 0.0, "normalize": False}),
    ("jsd", {"beta": 1.0, "normalize": False}),
    ("skew-kl", {"alpha": 1.0}),
    ("skew-reverse-kl", {"alpha": 1.0}),
]


@pytest.mark.parametrize(("name", "params"), ZERO_CASES)
@pytest.mark.parametrize("teacher", ["full", "topk"])
def test_degenerate_ends_return_a_zero_attached_to_the_graph(name, params, teacher):
    s, t = _logits()
    x = s.clone().requires_grad_()
    if teacher == "full":
        value = xent_core.loss(name, **params)(x, teacher_logits=t)
    else:
        top = torch.log_softmax(t, -1).topk(3, -1)
        value = xent_core.loss(name, **params)(
            x, teacher_topk_ids=top.indices, teacher_topk_logprobs=top.values
        )
    assert value.item() == 0.0
    value.backward()  # raised "does not require grad" when the zero was detached
    assert x.grad is not None and (x.grad == 0).all()


@pytest.mark.parametrize(("name", "params"), [("linear-jsd", {"beta": 0.0, "normalize": False})])
def test_linear_degenerate_end_is_attached(name, params):
    h, w, th, tw = _linear()
    hx = h.clone().requires_grad_()
    value = xent_core.loss(name, **params)(hx, w, th, tw)
    value.backward()
    assert value.item() == 0.0 and (hx.grad == 0).all()


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("jsd", {"normalize": "false"}, "normalize"),
        ("jsd", {"normalize": 1}, "normalize"),
        ("kd", {"scale_by_t2": "no"}, "scale_by_t2"),
        ("dkd", {"scale_by_t2": "False"}, "scale_by_t2"),
        ("linear-kd", {"shift": "no"}, "shift"),
        ("linear-jsd", {"shift": 1}, "shift"),
        ("kd", {"ignore_index": 1.5}, "ignore_index"),
        ("kd", {"ignore_index": -100.0}, "ignore_index"),
        ("jsd", {"ignore_index": None}, "ignore_index"),
        ("linear-kd", {"chunk_size": 2.0}, "chunk_size"),
        ("linear-kd", {"chunk_size": 0}, "chunk_size"),
        ("pld", {"top_k": 3.0}, "top_k"),
        ("jsd", {"beta": "0.5"}, "beta"),
        ("jsd", {"beta": float("nan")}, "beta"),
        ("dkd", {"alpha": True}, "alpha"),
        ("dist", {"gamma": float("inf")}, "gamma"),
        ("linear-jsd", {"softcap": 0}, "softcap"),
        ("kd", {"tail": 3}, "tail"),
        ("kd", {"vocab_align": "pad"}, "vocab_align"),
    ],
)
def test_typed_parameters(name, params, field):
    with pytest.raises(BadParameterError, match=field):
        xent_core.loss(name, **params)


def test_numpy_scalars_and_the_renormalize_spelling_are_accepted():
    np = pytest.importorskip("numpy")
    loss = xent_core.loss(
        "jsd", beta=np.float64(0.25), ignore_index=np.int64(-1), tail="renormalize"
    )
    assert loss.beta == 0.25 and loss.ignore_index == -1 and loss.tail == "renormalise"


@pytest.mark.parametrize("name", ["kd", "jsd", "dist", "pld"])
def test_nan_student_refused_with_a_top_k_teacher_and_under_compile(name: str) -> None:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(5, 11, generator=gen, dtype=torch.float64)
    logits[2, 3] = float("nan")
    targets = torch.randint(0, 11, (5,), generator=gen)
    teacher = torch.randn(5, 11, generator=gen, dtype=torch.float64)
    top = torch.log_softmax(teacher, -1).topk(4, dim=-1)
    loss = xent_core.loss(name)
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        loss(
            logits=logits,
            targets=targets,
            teacher_topk_ids=top.indices,
            teacher_topk_logprobs=top.values,
        )
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        torch.compile(loss, backend="eager")(logits=logits, targets=targets, teacher_logits=teacher)
