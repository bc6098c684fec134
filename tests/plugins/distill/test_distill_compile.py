"""Every distillation loss runs under ``torch.compile`` in one graph when the input checks are off.

``fullgraph=True`` turns any graph break into an error; the eager backend keeps the test fast
(the tracing is what can break), one inductor run checks the compiled values as well.
"""

from __future__ import annotations

import pytest
import torch

import xent_core

N, C, D = 6, 9, 5


def _inputs():
    g = torch.Generator().manual_seed(11)
    s = torch.randn(2, N // 2, C, generator=g, dtype=torch.float64)
    t = torch.randn(2, N // 2, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (2, N // 2), generator=g)
    y[0, 1] = -100
    return s, t, y


LOGIT_LOSSES = [
    ("kd", {"temperature": 2.0}),
    ("reverse-kl", {}),
    ("jsd", {"beta": 0.3}),
    ("jsd", {"beta": 0.0, "normalize": False}),
    ("skew-kl", {"alpha": 0.1}),
    ("skew-reverse-kl", {"alpha": 0.1}),
    ("tvd", {}),
    ("dkd", {}),
    ("dist", {}),
    ("pld", {"top_k": 3}),
]


@pytest.mark.parametrize(("name", "params"), LOGIT_LOSSES)
def test_logit_losses_compile_without_graph_breaks(name, params):
    torch._dynamo.reset()
    s, t, y = _inputs()
    loss = xent_core.loss(name, **params)
    with xent_core.input_checks(False):
        eager = loss(s, teacher_logits=t, targets=y)
        compiled = torch.compile(loss, backend="eager", fullgraph=True)
        got = compiled(s, teacher_logits=t, targets=y)
    torch.testing.assert_close(got, eager, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["linear-kd", "linear-jsd"])
def test_linear_losses_compile_without_graph_breaks(name):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(12)
    h, th = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    w, tw = torch.randn(C, D, generator=g), torch.randn(C, D, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    y[2] = -100
    loss = xent_core.loss(name, chunk_size=4)
    with xent_core.input_checks(False):
        eager = loss(h, w, th, tw, targets=y)
        got = torch.compile(loss, backend="eager", fullgraph=True)(h, w, th, tw, targets=y)
    torch.testing.assert_close(got, eager)


@pytest.mark.slow
def test_jsd_compiled_with_inductor_matches_eager_values_and_gradients():
    torch._dynamo.reset()
    s, t, y = _inputs()
    loss = xent_core.loss("jsd", beta=0.4, temperature=1.5)
    xe, xc = s.clone().requires_grad_(), s.clone().requires_grad_()
    with xent_core.input_checks(False):
        eager = loss(xe, teacher_logits=t, targets=y)
        got = torch.compile(loss, fullgraph=True)(xc, teacher_logits=t, targets=y)
    eager.backward()
    got.backward()
    torch.testing.assert_close(got, eager, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-10, atol=1e-12)
