"""token-entropy from logits: the chunked in-place formula against float64, masked classes."""

from __future__ import annotations

import math

import pytest
import torch
from xent_estimators import token_entropy

from xent_core import BadInputError


def _reference(z: torch.Tensor) -> torch.Tensor:
    lp = torch.log_softmax(z.double(), -1)
    p = lp.exp()
    return -(p * lp.masked_fill(p == 0, 0.0)).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_chunks_masks_and_peaked_rows_match_float64(monkeypatch, dtype) -> None:
    monkeypatch.setattr(token_entropy, "_CHUNK_ELEMENTS", 3 * 50)  # 3 rows per chunk, 7 chunks
    gen = torch.Generator().manual_seed(0)
    z = (4 * torch.randn(20, 50, generator=gen)).to(dtype)
    z[2, 7] = -math.inf  # one masked class
    z[5, :49] = -math.inf  # a single class left: entropy 0
    z[9, 3] = 80.0  # peaked row (entropy ~ 1e-33)
    z[19, ::2] = -math.inf  # last (short) chunk, half masked
    got = token_entropy.entropy_from_logits(z)
    want = _reference(z)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    assert got[5] == 0


def test_a_row_masked_everywhere_is_refused() -> None:
    z = torch.randn(4, 6)
    z[2] = -math.inf
    with pytest.raises(BadInputError, match="-inf everywhere"):
        token_entropy.entropy_from_logits(z)
