"""cross-entropy's chunked path finds NaN / +inf logits in its own per-row result.

It skips the separate ``amax`` pass, so every place a bad value can sit (a valid row, an
ignored row, the target class, a zero-weight class, half precision, each option) must still be
refused, and what is allowed (``-inf`` masked classes, rows all ``-inf``) must still pass.
"""

from __future__ import annotations

import math

import pytest
import torch

import xent_core
from xent_core import BadInputError

N, C = 9, 7
OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"label_smoothing": 1.0},
    {"weight": torch.tensor([0.0, 1, 2, 0, 1, 1, 3])},
    {"z_loss": 1e-4},
    {"temperature": 2.0},
    {"softcap": 30.0},
    {"reduction": "none"},
]


def _batch(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=gen).to(dtype)
    y = torch.randint(0, C, (N,), generator=gen)
    y[[1, 4]] = -100
    y[0] = 3  # a zero-weight class in OPTIONS
    return x, y


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("where", ["valid row", "ignored row", "target", "zero-weight target"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bad_logits_are_refused_everywhere(opts, bad, where, dtype) -> None:
    x, y = _batch(dtype)
    row, col = {
        "valid row": (2, (int(y[2]) + 1) % C),
        "ignored row": (1, 5),
        "target": (2, int(y[2])),
        "zero-weight target": (0, 3),
    }[where]
    x[row, col] = bad
    with pytest.raises(BadInputError, match="NaN" if math.isnan(bad) else r"\+inf"):
        xent_core.loss("cross-entropy", **opts)(x.requires_grad_(), y)


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_masked_classes_and_rows_pass_with_the_unchecked_value(opts) -> None:
    """-inf entries, a whole ignored row of -inf and a -inf at an ignored row's class 0 (0 * -inf
    is NaN in the per-row result) are allowed; the value equals the one with checks off."""
    x, y = _batch()
    x[2, (int(y[2]) + 1) % C] = -math.inf
    x[1] = -math.inf  # an ignored row, entirely masked
    x[4, 0] = -math.inf  # an ignored row's placeholder class
    loss = xent_core.loss("cross-entropy", **opts)
    got = loss(x, y)
    with xent_core.input_checks(False):
        want = loss(x, y)
    torch.testing.assert_close(got, want, equal_nan=True)
