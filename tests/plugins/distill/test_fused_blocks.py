"""The fused row blocks (``xent_distill._fused``) across block boundaries.

The block size is patched so that a small batch spans several blocks, the last one ragged; the
fused values and gradients (with per-row incoming weights) must equal the general masked
formulas of ``xent_distill.functional`` differentiated by autograd, in float64, on random rows
and on rows the fused expression hands back (a ``-inf`` class, a ratio past ``exp(709)``).
``tvd`` keeps nothing of size ``(N, C)`` and redoes its blocks in the backward; that backward
must also survive ``retain_graph`` (a second backward gives the same gradient).
"""

from __future__ import annotations

import pytest
import torch
from distill_refs import check_fused_matches_general, fused_rows, general_rows
from xent_distill import _fused

import xent_core

C = 7
CASES = [
    ("tvd", {}),
    ("tvd", {"temperature": 0.6}),
    ("kd", {"temperature": 2.0}),
    ("reverse-kl", {"temperature": 1.5}),
    ("jsd", {"beta": 0.3}),
]


def _rows(n: int, extreme: bool, dtype=torch.float64):
    g = torch.Generator().manual_seed(11)
    s = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    t = torch.randn(n, C, generator=g, dtype=torch.float64) * 3
    if extreme:
        t[4, 1] = float("-inf")  # in the second block
        s[7, 2] = s[7, 3] = t[7, 3] = float("-inf")
        t[9, 0] += 2000.0  # in the ragged last block
        s[3] = t[3]  # q == p exactly: tvd's subgradient is 0
    return s.to(dtype), t.to(dtype)


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("extreme", [False, True])
def test_ragged_blocks_match_the_general_formulas(monkeypatch, name, params, extreme):
    monkeypatch.setattr(_fused, "_BLOCK_ELEMENTS", 4 * C)  # blocks of 4 rows: 4, 4, 3
    loss = xent_core.loss(name, **params)
    s, t = _rows(11, extreme)
    w = torch.rand(11, generator=torch.Generator().manual_seed(2), dtype=s.dtype)
    check_fused_matches_general(loss, s, t, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tvd_blocks_in_low_precision_match_float64(monkeypatch, dtype):
    monkeypatch.setattr(_fused, "_BLOCK_ELEMENTS", 4 * C)
    loss = xent_core.loss("tvd", temperature=1.3)
    s, t = _rows(11, extreme=False, dtype=dtype)
    x = s.clone().requires_grad_()
    fused_rows(loss, x, t).sum().backward()
    assert x.grad.dtype == dtype
    xg = s.double().requires_grad_()
    ref = general_rows(loss, xg, t.double())
    ref.sum().backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(fused_rows(loss, s, t).double(), ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(x.grad.double(), xg.grad, rtol=tol, atol=tol)


def test_tvd_recomputed_backward_can_run_twice(monkeypatch):
    monkeypatch.setattr(_fused, "_BLOCK_ELEMENTS", 4 * C)
    loss = xent_core.loss("tvd")
    s, t = _rows(11, extreme=True)
    x = s.clone().requires_grad_()
    out = fused_rows(loss, x, t).sum()
    (first,) = torch.autograd.grad(out, x, retain_graph=True)
    (second,) = torch.autograd.grad(out, x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    xg = s.clone().requires_grad_()
    general_rows(loss, xg, t).sum().backward()
    torch.testing.assert_close(first, xg.grad, rtol=1e-9, atol=1e-12)
