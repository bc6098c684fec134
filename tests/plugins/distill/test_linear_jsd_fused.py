"""linear-jsd: the fused rows (``_fused.block_rows``) agree with the general block they replace."""

from __future__ import annotations

import pytest
import torch
from xent_distill import _linear_chunked as LC

import xent_core

N, D, V = 23, 7, 41


def _inputs(dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    w = torch.randn(V, D, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(V, generator=g, dtype=torch.float64)
    th = torch.randn(N, D, generator=g, dtype=torch.float64)
    tw = torch.randn(V, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, V, (N,), generator=g)
    y[::4] = -100
    return [x.to(dtype) for x in (h, w, b, th, tw)] + [y]


def _run(params: dict, inputs: list, reduction: str, general: bool, mp: pytest.MonkeyPatch):
    h, w, b, th, tw, y = (x.clone() for x in inputs)
    leaves = [x.requires_grad_() for x in (h, w, b)]
    with mp.context() as m:
        if general:
            m.setattr(LC, "_fused_rule", lambda spec: None)
        loss = xent_core.loss("linear-jsd", chunk_size=8, reduction=reduction, **params)
        out = loss(h, w, th, tw, targets=y, bias=b)
        weights = torch.linspace(0.5, 2.0, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad((out * weights).sum(), leaves)
    return out.detach(), grads


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(
    "params",
    [
        {"beta": 0.5},
        {"beta": 0.1, "temperature": 1.5, "normalize": False},
        {"beta": 0.9, "softcap": 3.0},
        {"beta": 0.0},
        {"beta": 1.0, "temperature": 0.7},
    ],
)
def test_fused_rows_match_the_general_block_in_float64(params, reduction, monkeypatch) -> None:
    inputs = _inputs(torch.float64)
    got, g_got = _run(params, inputs, reduction, False, monkeypatch)
    ref, g_ref = _run(params, inputs, reduction, True, monkeypatch)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-13)
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["extreme row", "masked entry"])
def test_rows_the_fused_expression_cannot_do_are_redone_by_the_general_block(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _inputs(torch.float32, seed=1)
    if case == "extreme row":
        inputs[0][5] *= 80.0  # log(p/q) of hundreds: expm1 overflows in float32, row 5 only
    else:
        inputs[2][3] = float("-inf")  # a vocabulary entry the student rules out (every row)
    redone: list[int] = []
    block = LC._block

    def spy(us, ut, spec, row_factor):  # type: ignore[no-untyped-def]
        redone.append(us.shape[0])
        return block(us, ut, spec, row_factor)

    with monkeypatch.context() as m:
        m.setattr(LC, "_block", spy)
        got, g_got = _run({"beta": 0.3}, inputs, "none", False, monkeypatch)
    ref, g_ref = _run({"beta": 0.3}, inputs, "none", True, monkeypatch)
    kept = (inputs[-1] != -100).sum().item()
    assert sum(redone) == (2 if case == "extreme row" else 2 * kept)  # forward and backward
    assert torch.isfinite(got).all() and all(torch.isfinite(g).all() for g in g_got)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    if case == "extreme row":
        assert got[5] == ref[5]
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
