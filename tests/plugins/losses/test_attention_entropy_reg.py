"""attention-entropy-reg: the spec's computed penalty, a row-by-row float64 reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch

import xent_core

FIXTURE = [[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]]


def _loss(**kw):
    return xent_core.loss("attention-entropy-reg", **kw)


def test_spec_reference_penalty():
    a = torch.tensor(FIXTURE, dtype=torch.float64)[None, None]  # (B=1, H=1, T=4, T=4)
    # the official log(A + 1e-9): P = 0.9609060237, times the default coefficient 1e-5
    assert _loss(coefficient=1.0, eps=1e-9)(attentions=a).item() == pytest.approx(
        0.9609060237, abs=1e-10
    )
    assert _loss(eps=1e-9)(attentions=a).item() == pytest.approx(9.609060237e-6, abs=1e-15)
    # exact 0 log 0 = 0: rows 1 and 3 are outside the band |H - 0.5 log 4| <= 0.2 log 4
    hmax = math.log(4)
    h4 = 0.7 * math.log(1 / 0.7) + 0.3 * math.log(10)
    want = (0 - 0.5 * hmax) ** 2 + (math.log(4) - 0.5 * hmax) ** 2
    assert abs(math.log(2) - 0.5 * hmax) <= 0.2 * hmax  # rows 2 and 4 are inside the band
    assert abs(h4 - 0.5 * hmax) <= 0.2 * hmax
    assert _loss(coefficient=1.0)(attentions=a).item() == pytest.approx(want, abs=1e-14)


def _reference(att, theta, tolerance, causal, context, row_ok):
    """Row by row: entropy over p > 0, Hmax, band, squared deviation (float64, plain Python)."""
    n_l, n_b, n_h, tq, tk = att.shape
    out = torch.zeros(n_l, n_b, n_h, tq, dtype=torch.float64)
    for idx in range(n_l * n_b * n_h * tq):
        l, rest = divmod(idx, n_b * n_h * tq)
        b, rest = divmod(rest, n_h * tq)
        h, t = divmod(rest, tq)
        if not row_ok[b][t]:
            continue
        row = [float(x) for x in att[l, b, h, t]]
        ent = -sum(p * math.log(p) for p in row if p > 0)
        hmax = (
            math.log(sum(1 for j in range(tk) if j <= t + tk - tq)) if causal else math.log(context)
        )
        dev = ent - float(theta[l][h]) * hmax
        if abs(dev) > tolerance * hmax:
            out[l, b, h, t] = dev * dev
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_layers_heads_reductions_and_padding_match_reference(causal):
    g = torch.Generator().manual_seed(3)
    n_l, n_b, n_h, t = 2, 3, 4, 6
    scores = torch.randn(n_l, n_b, n_h, t, t, generator=g, dtype=torch.float64) * 1.5
    pad = torch.ones(n_b, t, dtype=torch.bool)
    pad[1, 4:] = False  # sequence 1 has 4 real tokens
    allowed = pad[None, :, None, None, :].expand(scores.shape)
    if causal:
        allowed = allowed & torch.tril(torch.ones(t, t, dtype=torch.bool))
    att = torch.softmax(scores.masked_fill(~allowed, -math.inf), -1)
    theta = torch.rand(n_l, n_h, generator=g, dtype=torch.float64)
    row_ok = pad.tolist()
    ref = _reference(att, theta.tolist(), 0.2, causal, t, row_ok)
    kw = dict(coefficient=2.0, tolerance=0.2, causal=causal)
    layers = list(att)  # a list of (B, H, T, T), as output_attentions gives
    inputs = dict(thresholds=theta, attention_mask=pad.long())
    total = _loss(reduction="sum", **kw)(attentions=layers, **inputs)
    assert total.item() == pytest.approx(2.0 * ref.sum().item() / (n_l * n_h), rel=1e-12)
    per = _loss(reduction="none", **kw)(attentions=att, **inputs)
    torch.testing.assert_close(per, 2.0 * ref, rtol=1e-12, atol=1e-15)
    mean = _loss(reduction="mean", **kw)(attentions=att, **inputs)
    counted = n_l * n_h * int(pad.sum())
    assert mean.item() == pytest.approx(2.0 * ref.sum().item() / counted, rel=1e-12)
    # one layer as (B, H, T, T) with (H,) thresholds
    one = _loss(reduction="none", **kw)(attentions=att[0], thresholds=theta[0], attention_mask=pad)
    torch.testing.assert_close(one, 2.0 * ref[0], rtol=1e-12, atol=1e-15)


def test_gradcheck_attentions_and_thresholds():
    g = torch.Generator().manual_seed(5)
    att = torch.softmax(torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64) * 2, -1)
    theta = torch.tensor([0.2, 0.9, 0.5], dtype=torch.float64)
    loss = _loss(coefficient=1.0, tolerance=0.05, reduction="sum")
    # no row within 1e-3 of the band's edges, so finite differences do not cross the step
    h = -(att * att.log()).sum(-1)
    edge = (h - theta[None, :, None] * math.log(5)).abs() - 0.05 * math.log(5)
    assert edge.abs().min() > 1e-3
    att.requires_grad_(True)
    theta.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, th: loss(attentions=a, thresholds=th), (att, theta))


def test_masked_probabilities_give_finite_gradients_equal_to_the_compact_softmax():
    g = torch.Generator().manual_seed(9)
    scores = torch.randn(2, 3, 4, 7, generator=g, dtype=torch.float64) * 2
    keep = torch.tensor([1, 1, 1, 1, 0, 0, 0], dtype=torch.bool)
    full = scores.clone().requires_grad_(True)
    att = torch.softmax(full.masked_fill(~keep, -math.inf), -1)
    loss = _loss(coefficient=1.0, tolerance=0.0, context_size=7)
    loss(attentions=att).backward()
    assert torch.isfinite(full.grad).all() and (full.grad[..., 4:] == 0).all()
    compact = scores[..., :4].clone().requires_grad_(True)
    p = torch.softmax(compact, -1)
    h = -(p * p.log()).sum(-1)
    naive = ((h - 0.5 * math.log(7)) ** 2).sum() / 3  # one layer, 3 heads
    naive.backward()
    torch.testing.assert_close(full.grad[..., :4], compact.grad, rtol=1e-12, atol=1e-14)


def test_stack_with_cross_entropy_and_bad_inputs():
    g = torch.Generator().manual_seed(0)
    att = torch.softmax(torch.randn(2, 2, 3, 3, generator=g), -1)
    logits, targets = torch.randn(4, 5, generator=g), torch.tensor([0, 3, 1, 4])
    stack = xent_core.stack("cross-entropy + attention-entropy-reg")
    ce = torch.nn.functional.cross_entropy(logits, targets)
    out = stack(logits=logits, targets=targets, attentions=att)
    value = out[0] if isinstance(out, tuple) else out
    reg = _loss()(attentions=att)
    assert float(value) == pytest.approx(float(ce + reg), rel=1e-6)
    with pytest.raises(xent_core.BadInputError, match=r"\[0, 1\]"):
        _loss()(attentions=torch.randn(2, 2, 3, 3))
    with pytest.raises(xent_core.BadInputError, match="thresholds"):
        _loss()(attentions=att, thresholds=torch.ones(3))
    with pytest.raises(xent_core.BadInputError, match="shape"):
        _loss()(attentions=[att, att[:, :1]])
    with pytest.raises(xent_core.BadInputError):
        _loss()(attentions=att, attention_mask=torch.ones(5, 5))
    with pytest.raises(xent_core.BadInputError, match="0/1"):
        _loss()(attentions=att, attention_mask=torch.tensor([[1, 0.5, 1], [1, 1, 1]]))
    with pytest.raises(xent_core.BadParameterError):
        _loss(tolerance=-0.1)
