"""``shift=True`` on ``linear-kd``/``linear-jsd`` aligns them with ``linear-cross-entropy(shift=True)``.

Position ``t`` counts when ``targets[..., t + 1]`` is not ignored and the last position never, so a
stack of the three takes the same unshifted ``(B, T, ...)`` inputs a causal LM produces.
"""

from __future__ import annotations

import pytest
import torch

import xent_core

B, T, D, V = 2, 5, 4, 9


def _inputs():
    g = torch.Generator().manual_seed(21)
    h = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    th = torch.randn(B, T, D + 1, generator=g, dtype=torch.float64)
    w = torch.randn(V, D, generator=g, dtype=torch.float64)
    tw = torch.randn(V, D + 1, generator=g, dtype=torch.float64)
    y = torch.randint(0, V, (B, T), generator=g)
    y[0, 2] = -100
    return h, th, w, tw, y


@pytest.mark.parametrize("name", ["linear-kd", "linear-jsd"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_shift_equals_the_sliced_unshifted_loss(name, reduction):
    h, th, w, tw, y = _inputs()
    loss = xent_core.loss(name, shift=True, reduction=reduction, temperature=1.5)
    plain = xent_core.loss(name, reduction=reduction, temperature=1.5)
    hx = h.clone().requires_grad_()
    got = loss(hx, w, th, tw, targets=y)
    hr = h.clone().requires_grad_()
    ref = plain(hr[:, :-1], w, th[:, :-1], tw, targets=y[:, 1:])
    if reduction == "none":
        assert got.shape == (B, T) and (got[:, -1] == 0).all()
        torch.testing.assert_close(got[:, :-1], ref)
    else:
        torch.testing.assert_close(got, ref)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(hx.grad, hr.grad)


def test_shift_without_targets_drops_the_last_position():
    h, th, w, tw, _ = _inputs()
    got = xent_core.loss("linear-kd", shift=True)(h, w, th, tw)
    ref = xent_core.loss("linear-kd")(h[:, :-1], w, th[:, :-1], tw)
    torch.testing.assert_close(got, ref)


def test_a_stack_of_the_three_takes_the_same_unshifted_inputs():
    h, th, w, tw, y = _inputs()
    spec = (
        "linear-cross-entropy(shift=True) + 0.5*linear-kd(shift=True, temperature=2) "
        "+ 0.25*linear-jsd(shift=True, beta=0.3)"
    )
    stack = xent_core.stack(spec)
    out = stack(hidden=h, classifier=w, targets=y, teacher_hidden=th, teacher_classifier=tw)
    got = out[0] if isinstance(out, tuple) else out
    hs, ths, ys = h[:, :-1], th[:, :-1], y[:, 1:]
    ce = torch.nn.functional.cross_entropy((hs @ w.T).reshape(-1, V), ys.reshape(-1))
    kd = xent_core.loss("kd", temperature=2.0)(hs @ w.T, teacher_logits=ths @ tw.T, targets=ys)
    jsd = xent_core.loss("jsd", beta=0.3)(hs @ w.T, teacher_logits=ths @ tw.T, targets=ys)
    torch.testing.assert_close(got, ce + 0.5 * kd + 0.25 * jsd)


def test_default_chunk_is_vocabulary_aware():
    from xent_distill._linear_chunked import CHUNK_ELEMENTS, Spec, rows_per_chunk

    spec = Spec(kind="kd", temperature=1.0, softcap=None)
    assert rows_per_chunk(spec, 32768) == 256  # the former fixed default at V = 32768
    assert rows_per_chunk(spec, 128256) == CHUNK_ELEMENTS // 128256 == 65
    assert rows_per_chunk(spec, 10**9) == 1
    assert rows_per_chunk(spec._replace(chunk_size=7), 128256) == 7
    assert xent_core.loss("linear-jsd").chunk_size is None
