"""Regression tests from a review of the estimators: edge cases a researcher hits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators.rolling import RollingEntropy

import xent_core
from xent_core import BadInputError


# ----------------------------------------------------------------------------- vendi, large q
@pytest.mark.parametrize("q", [50.0, 500.0, 1e6])
def test_vendi_large_order_does_not_underflow(q: float) -> None:
    # eigenvalues 0.5, 0.25, 0.25: sum l^q underflows to 0 in float64 for large q, but
    # VS_q = exp(log(sum l^q) / (1 - q)) is finite and tends to 1 / max l = 2 as q -> inf.
    k = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1.0]])
    lam = np.array([0.5, 0.25, 0.25])
    log_sum = np.logaddexp.reduce(q * np.log(lam))
    expected = math.exp(log_sum / (1.0 - q))
    got = xent_core.estimator("vendi", q=q, input="kernel")(k)
    assert got == pytest.approx(expected, rel=1e-9)
    assert 2.0 <= got <= xent_core.estimator("vendi", q=2, input="kernel")(k)


def test_vendi_large_order_approaches_infinity_order_on_embeddings() -> None:
    x = np.random.default_rng(3).standard_normal((40, 6))
    v_big = xent_core.estimator("vendi", q=1e6)(x)
    v_inf = xent_core.estimator("vendi", q="inf")(x)
    assert v_big == pytest.approx(v_inf, rel=1e-4)


# ----------------------------------------------------------------------------- masked logits
def _masked_logits() -> torch.Tensor:
    # row 0: two equal survivors (entropy log 2); row 1: three survivors with given logits
    ninf = -math.inf
    return torch.tensor([[0.0, 0.0, ninf, ninf, ninf], [1.0, ninf, 2.0, ninf, 0.5]])


def _reference(logits: torch.Tensor) -> torch.Tensor:
    out = []
    for row in logits.double():
        z = row[torch.isfinite(row)]
        p = torch.softmax(z, dim=0)
        out.append(-(p * p.log()).sum())
    return torch.stack(out)


def test_token_entropy_accepts_masked_minus_inf_logits() -> None:
    logits = _masked_logits()
    value, details = xent_core.estimator("token-entropy")(logits, details=True)
    ref = _reference(logits)
    assert torch.allclose(details["per_token"].double(), ref, atol=1e-6)
    assert value == pytest.approx(float(ref.mean()), abs=1e-6)
    assert details["per_token"][0].item() == pytest.approx(math.log(2.0), abs=1e-6)


def test_token_entropy_masked_logits_stay_masked_under_softcap() -> None:
    logits = _masked_logits()
    got = xent_core.estimator("token-entropy", softcap=30.0)(logits, details=True)[1]
    capped = torch.where(torch.isinf(logits), logits, torch.tanh(logits / 30.0) * 30.0)
    assert torch.allclose(got["per_token"].double(), _reference(capped), atol=1e-6)


def test_rolling_entropy_of_masked_logits_is_not_nan() -> None:
    roll = RollingEntropy(window=4, base=2)
    h = roll.update(_masked_logits())
    assert torch.isfinite(h).all()
    assert h[0].item() == pytest.approx(1.0, abs=1e-6)  # two equal survivors: 1 bit
    assert torch.allclose(h.double(), _reference(_masked_logits()) / math.log(2.0), atol=1e-6)


def test_token_entropy_rejects_nan_posinf_and_fully_masked_rows() -> None:
    est = xent_core.estimator("token-entropy")
    with pytest.raises(BadInputError, match="NaN or \\+inf"):
        est(torch.tensor([[0.0, math.nan, -math.inf]]))
    with pytest.raises(BadInputError, match="NaN or \\+inf"):
        est(torch.tensor([[0.0, math.inf, -math.inf]]))
    with pytest.raises(BadInputError, match="-inf everywhere"):
        est(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]))
