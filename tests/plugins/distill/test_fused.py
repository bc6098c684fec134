"""The fused per-row divergences (``xent_distill._fused``) against the general masked formulas.

The fused path is what ``kd``, ``reverse-kl``, ``jsd``, ``skew-kl``, ``skew-reverse-kl`` and
``tvd`` run on full teacher logits in eager mode; the general path (``xent_distill.functional``,
differentiated by autograd) is what they run on top-k teachers and under ``torch.compile``. Both
must agree in float64 on ordinary rows, near the ends of the mixture weights, and on the rows the
fused expression hands back to the general one (``-inf`` classes, ratios past ``exp(88)``).
"""

from __future__ import annotations

import pytest
import torch
from distill_refs import check_fused_matches_general, jsd, kl, probs, skew_kl, skew_reverse_kl, tvd

import xent_core

CASES = [
    ("kd", {"temperature": 2.0}),
    ("kd", {"scale_by_t2": False, "temperature": 0.5}),
    ("reverse-kl", {"temperature": 1.5}),
    ("tvd", {"temperature": 0.7}),
    ("jsd", {"beta": 0.5}),
    ("jsd", {"beta": 0.5, "normalize": False, "temperature": 2.0}),
    ("jsd", {"beta": 1e-6}),
    ("jsd", {"beta": 1 - 1e-6}),
    ("jsd", {"beta": 0.8, "normalize": False}),
    ("jsd", {"beta": 0.0}),
    ("jsd", {"beta": 1.0}),
    ("jsd", {"beta": 0.0, "normalize": False}),
    ("skew-kl", {"alpha": 0.1}),
    ("skew-kl", {"alpha": 0.9, "temperature": 2.0}),
    ("skew-kl", {"alpha": 1.0}),
    ("skew-reverse-kl", {"alpha": 0.2}),
    ("skew-reverse-kl", {"alpha": 0.95}),
    ("skew-reverse-kl", {"alpha": 0.0}),
]


def _rows(dtype=torch.float64, extreme=True):
    g = torch.Generator().manual_seed(7)
    n, c = 11, 13
    s = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    t = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    if extreme:
        t[1, 2] = float("-inf")  # the teacher rules a class out
        s[2, 4] = float("-inf")  # the student rules a class out
        s[3, 5] = t[3, 5] = float("-inf")  # both do (a masked vocabulary entry)
        s[4, 0] += 400.0  # ratios far past exp(88) (float32) and exp(709) (float64)
        t[5, 1] += 2000.0
    return s.to(dtype), t.to(dtype)


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("extreme", [False, True])
def test_fused_rows_match_the_general_formulas_in_float64(name, params, extreme):
    loss = xent_core.loss(name, **params)
    s, t = _rows(extreme=extreme)
    w = torch.rand(s.shape[0], generator=torch.Generator().manual_seed(1), dtype=s.dtype)
    check_fused_matches_general(loss, s, t, w)


_REF = {
    "kd": lambda p, q, prm: (
        kl(p, q) * (prm.get("temperature", 1.0) ** 2 if prm.get("scale_by_t2", True) else 1.0)
    ),
    "reverse-kl": lambda p, q, prm: kl(q, p),
    "tvd": lambda p, q, prm: tvd(p, q),
    "jsd": lambda p, q, prm: jsd(p, q, prm["beta"], prm.get("normalize", True)),
    "skew-kl": lambda p, q, prm: skew_kl(p, q, prm["alpha"]),
    "skew-reverse-kl": lambda p, q, prm: skew_reverse_kl(p, q, prm["alpha"]),
}


# float32 cannot hold the O(beta) terms at beta = 1e-6; the ends 0 and 1 are other rules
_FLOAT32_CASES = [c for c in CASES if c[1].get("beta", 0.5) not in (0.0, 1.0, 1e-6, 1 - 1e-6)]


@pytest.mark.parametrize(("name", "params"), _FLOAT32_CASES)
def test_float32_fused_rows_match_a_float64_reference(name, params):
    loss = xent_core.loss(name, reduction="none", **params)
    s, t = _rows(extreme=False)
    temp = params.get("temperature", 1.0)
    ref = _REF[name](probs(t, temp), probs(s, temp), params)
    got = loss(s.float(), teacher_logits=t.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-6)


def test_float32_overflowing_ratio_rows_fall_back_and_stay_accurate():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(6, 9, generator=g, dtype=torch.float64)
    t = torch.randn(6, 9, generator=g, dtype=torch.float64)
    t[2, 3] += 150.0  # p/q ~ e^150: expm1 overflows in float32
    loss = xent_core.loss("jsd", beta=0.3, reduction="none")
    got = loss(s.float(), teacher_logits=t.float())
    ref = jsd(probs(t), probs(s), 0.3)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_compute_in_float32_and_return_half_gradients(dtype):
    s, t = _rows(extreme=False)
    x = s.to(dtype).requires_grad_()
    value = xent_core.loss("jsd", beta=0.4)(x, teacher_logits=t.to(dtype))
    value.backward()
    assert value.dtype == torch.float32 and x.grad.dtype == dtype
    ref = jsd(probs(t.to(dtype)), probs(s.to(dtype)), 0.4).mean()
    torch.testing.assert_close(value.double(), ref, rtol=1e-5, atol=1e-6)


def test_no_grad_forward_keeps_no_gradient_buffer():
    s, t = _rows(extreme=False)
    with torch.no_grad():
        value = xent_core.loss("kd")(s.requires_grad_(), teacher_logits=t)
    assert value.grad_fn is None


@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize(("alpha", "beta", "temperature"), [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0)])
def test_dkd_fused_rows_match_the_general_formulas_in_float64(extreme, alpha, beta, temperature):
    s, t = _rows(extreme=extreme)
    y = torch.randint(0, s.shape[1], (s.shape[0],), generator=torch.Generator().manual_seed(2))
    s[6, y[6]] += 40.0  # a confident student: 1 - q_y ~ e^-40
    t[7, y[7]] += 40.0  # and a confident teacher
    loss = xent_core.loss("dkd", alpha=alpha, beta=beta, temperature=temperature, reduction="none")
    xf = s.clone().requires_grad_()
    fused = loss(xf, y, teacher_logits=t)
    xg = s.clone().requires_grad_()
    with xent_core.input_checks(False):  # the general path, as under torch.compile
        lq = torch.log_softmax(xg / temperature, -1)
        lp = torch.log_softmax(t / temperature, -1)
        general = loss._parts(lp, lq, y) * temperature**2
    torch.testing.assert_close(fused, general, rtol=1e-9, atol=1e-12)
    finite = torch.isfinite(general)
    fused[finite].sum().backward()
    general[finite].sum().backward()
    torch.testing.assert_close(xf.grad[finite], xg.grad[finite], rtol=1e-9, atol=1e-12)
