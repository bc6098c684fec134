"""attention-entropy against the spec's values, a naive float64 softmax entropy, and masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators import (
    attention_entropy_from_qk,
    attention_row_entropy,
    entropy_invariant_scale,
)

import xent_core

# the spec's fixture: one-hot, two-way, uniform over 4, and a peaked row
FIXTURE = [[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]]


def _est(**kw):
    return xent_core.estimator("attention-entropy", **kw)


def _naive(p: torch.Tensor) -> torch.Tensor:
    """-(p log p).sum(-1) with 0 log 0 = 0, float64."""
    p = p.double()
    return -(p * torch.where(p > 0, p, torch.ones_like(p)).log()).sum(-1)


def test_spec_fixture_and_closed_forms():
    h, valid, n = attention_row_entropy(torch.tensor(FIXTURE, dtype=torch.float64))
    # the spec's 0.9404479847 is -sum p log(p + 1e-9) (the official +1e-9, 4e-9 below the exact
    # 0.7 log(1/0.7) + 0.3 log 10 = 0.94044798866)
    exact = [0.0, math.log(2), math.log(4), 0.7 * math.log(1 / 0.7) + 0.3 * math.log(10)]
    np.testing.assert_allclose(h.numpy(), exact, rtol=0, atol=1e-15)
    np.testing.assert_allclose(h.numpy(), [0, 0.6931471806, 1.3862943611, 0.9404479847], atol=1e-8)
    assert valid.all() and n.tolist() == [4] * 4
    # uniform over n keys -> log n; causal uniform row t -> log(t + 1)
    t = 37
    causal = torch.tril(torch.ones(t, t, dtype=torch.float64))
    causal = causal / causal.sum(-1, keepdim=True)
    value, d = _est(causal=True)(causal, details=True)
    np.testing.assert_allclose(d["per_row"], np.log(np.arange(1, t + 1)), atol=1e-14)
    assert value == pytest.approx(np.log(np.arange(1, t + 1)).mean(), abs=1e-14)
    value = _est(causal=True, normalized=True)(causal)
    assert value == pytest.approx(1.0, abs=1e-14)  # uniform rows, the 1-key row skipped


def test_entropy_invariant_scale():
    assert entropy_invariant_scale(1024, 256, 1) == pytest.approx(1.1180339887, abs=1e-10)
    assert entropy_invariant_scale(1024, 256, 64) == pytest.approx(1.1180339887 / 8, abs=1e-11)
    assert entropy_invariant_scale(300, 300, 16) == pytest.approx(0.25, abs=1e-15)
    with pytest.raises(xent_core.BadParameterError):
        entropy_invariant_scale(10, 1, 8)


def test_probabilities_with_padding_mask_match_naive():
    g = torch.Generator().manual_seed(4)
    b, heads, tq, tk = 3, 5, 7, 11
    keep = torch.ones(b, tk, dtype=torch.bool)
    keep[1, 8:] = False
    keep[2, 3:] = False
    scores = torch.randn(b, heads, tq, tk, generator=g, dtype=torch.float64) * 2
    scores = scores.masked_fill(~keep[:, None, None, :], -math.inf)
    p = torch.softmax(scores, -1)
    value, d = _est()(p.float(), mask=keep, details=True)  # fp32 input, a (B, Tk) mask
    ref = _naive(p)
    np.testing.assert_allclose(d["per_row"], ref.numpy(), rtol=1e-5, atol=1e-6)
    assert value == pytest.approx(float(ref.mean()), rel=1e-6)
    np.testing.assert_allclose(d["per_head"], ref.mean(dim=(0, 2)).numpy(), rtol=1e-6)
    hmax = torch.tensor([11.0, 8.0, 3.0], dtype=torch.float64).log()[:, None, None]
    hmax = hmax.expand(b, heads, tq)
    assert d["max_entropy"] == pytest.approx(float(hmax.mean()), rel=1e-6)  # fp32 input
    # normalized: divide by log(#allowed keys) per row
    v = _est(normalized=True)(p, mask=keep)
    assert v == pytest.approx(float((ref / hmax).mean()), abs=1e-12)


def test_all_zero_padding_rows_are_skipped_and_bf16_is_computed_in_fp32():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(2, 3, 6, 9, generator=g), -1)
    p[1, :, 4:] = 0.0  # padded queries
    value, d = _est()(p.bfloat16(), details=True)
    ref = _naive(p.bfloat16().float())
    keep = torch.ones(2, 3, 6, dtype=torch.bool)
    keep[1, :, 4:] = False
    assert value == pytest.approx(float(ref[keep].mean()), rel=1e-6)
    assert np.isnan(d["per_row"][1, :, 4:]).all()


@pytest.mark.parametrize(("causal", "block"), [(False, 4), (True, 3), (True, 1000)])
def test_queries_and_keys_match_the_materialised_softmax(causal, block):
    g = torch.Generator().manual_seed(11)
    q = torch.randn(2, 3, 13, 8, generator=g, dtype=torch.float64) * 2
    k = torch.randn(2, 3, 17, 8, generator=g, dtype=torch.float64) * 2
    keep = torch.rand(2, 17, generator=g) > 0.3
    keep[:, -1] = True  # with causal, every query still has a key
    s = q @ k.transpose(-1, -2) * 0.3
    allowed = keep[:, None, None, :].expand(2, 3, 13, 17)
    if causal:
        allowed = allowed & (torch.arange(17)[None] <= torch.arange(13)[:, None] + 4)
    valid = allowed.any(-1)
    ref = _naive(torch.softmax(s.masked_fill(~allowed, -math.inf), -1).nan_to_num(0.0))
    h, v, n = attention_entropy_from_qk(q, k, scale=0.3, mask=keep, causal=causal, block_size=block)
    assert torch.equal(v, valid) and torch.equal(n, allowed.sum(-1))
    torch.testing.assert_close(h[valid], ref[valid], rtol=0, atol=1e-12)
    value = _est(causal=causal, scale=0.3, block_size=block)(q, k, mask=keep)
    assert value == pytest.approx(float(ref[valid].mean()), abs=1e-12)


def test_qk_path_is_stable_for_large_scores():
    # scores of order 1e4: exp overflows without the running max; entropy still finite
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 4, 16, generator=g) * 100
    k = torch.randn(1, 9, 16, generator=g) * 100
    h, valid, _ = attention_entropy_from_qk(q, k, block_size=2)
    s = (q.double() @ k.double().transpose(-1, -2)) / 4
    torch.testing.assert_close(h.double(), _naive(torch.softmax(s, -1)), rtol=0, atol=1e-4)
    assert torch.isfinite(h).all() and valid.all()


def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 33, 16, generator=g), torch.randn(2, 4, 40, 16, generator=g)
    cpu = _est(causal=True, block_size=8)(q, k)
    assert _est(causal=True, block_size=8)(q.cuda(), k.cuda()) == pytest.approx(cpu, rel=1e-5)


def test_bad_inputs():
    est = _est()
    with pytest.raises(xent_core.BadInputError, match="masked keys"):
        est(torch.full((2, 4), 0.25), mask=torch.tensor([1, 1, 1, 0]))
    with pytest.raises(xent_core.BadInputError, match="sum to 1"):
        est(torch.full((2, 4), 0.3))
    with pytest.raises(xent_core.BadInputError, match=r"\[0, 1\]"):
        est(torch.randn(2, 4))  # scores, not probabilities
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        est(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(xent_core.BadInputError, match="same d"):
        est(torch.randn(3, 4), torch.randn(5, 3))
    with pytest.raises(xent_core.BadInputError, match="no row"):
        est(torch.zeros(2, 4))  # every row is padding
    with pytest.raises(xent_core.BadInputError, match="broadcast"):
        est(torch.full((2, 4), 0.25), mask=torch.ones(3))
    with pytest.raises(xent_core.BadParameterError):
        _est(scale=0.0)
