"""entropy-switch: the paper's cost figures and a plain-Python replay of the switching rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from xent_estimators import EntropySwitch, switch_cost, switch_schedule

import xent_core


def test_published_cost_reductions():
    # Entropy Adaptive Decoding (arXiv:2502.06833): LLaMA 3B/11B with 43% of tokens on the
    # large model saves 41.5%; Qwen 1.5B/14B with 25% saves 67% (nominal sizes)
    assert switch_cost(0.43, 3 / 11) == pytest.approx(0.5854545455, abs=1e-10)
    assert 1 - switch_cost(0.43, 3 / 11) == pytest.approx(0.4145, abs=5e-5)
    assert switch_cost(0.25, 1.5 / 14) == pytest.approx(0.3303571429, abs=1e-10)
    assert 1 - switch_cost(0.25, 1.5 / 14) == pytest.approx(0.6696, abs=5e-5)
    assert switch_cost(0.25, 0.5, small_always_runs=True) == pytest.approx(0.75, abs=1e-15)


def _replay(h, threshold, window, hysteresis, min_dwell):
    """The rule step by step for one sequence, in float64."""
    large, dwell, out = False, min_dwell, []
    for t in range(len(h)):
        mean = float(np.mean(h[max(0, t - window + 1) : t + 1]))
        if dwell >= min_dwell and not large and mean > threshold:
            large, dwell = True, 1
        elif dwell >= min_dwell and large and mean <= threshold - hysteresis:
            large, dwell = False, 1
        else:
            dwell += 1
        out.append(large)
    return out


@pytest.mark.parametrize(
    ("window", "hysteresis", "min_dwell"), [(1, 0.0, 1), (4, 0.0, 1), (3, 0.4, 1), (5, 0.2, 3)]
)
def test_batch_schedule_matches_the_replay(window, hysteresis, min_dwell):
    rng = np.random.default_rng(window * 10 + min_dwell)
    h = rng.gamma(2.0, 0.7, size=(4, 37))
    use = switch_schedule(
        h, threshold=1.5, window=window, hysteresis=hysteresis, min_dwell=min_dwell
    )
    for b in range(4):
        assert use[b].tolist() == _replay(h[b], 1.5, window, hysteresis, min_dwell)
    est = xent_core.estimator(
        "entropy-switch", threshold=1.5, size_ratio=0.25, window=window,
        hysteresis=hysteresis, min_dwell=min_dwell,
    )  # fmt: skip
    value, d = est(h, details=True)
    f = np.mean([_replay(h[b], 1.5, window, hysteresis, min_dwell) for b in range(4)])
    assert d["fraction_large"] == pytest.approx(f, abs=1e-15)
    assert value == pytest.approx(f + (1 - f) * 0.25, abs=1e-15)
    for b, points in enumerate(d["switch_points"]):
        seq = [False, *d["use_large"][b].tolist()]
        assert points == [t for t in range(37) if seq[t + 1] != seq[t]]


def test_stepping_with_logits_uses_the_entropy_of_the_softmax():
    torch.manual_seed(0)
    logits = torch.randn(9, 3, 50, dtype=torch.float64) * torch.tensor([0.1, 1.0, 6.0])[:, None]
    rule = EntropySwitch(threshold=3.0, window=2)
    got = torch.stack([rule.step(z) for z in logits])  # (steps, batch)
    p = torch.softmax(logits, -1)
    h = -(p * p.log()).sum(-1)  # (steps, batch), float64 reference
    want = switch_schedule(h.T, threshold=3.0, window=2)
    assert torch.equal(got.T, want)
    assert rule.fraction_large == pytest.approx(float(want.double().mean()), abs=1e-15)


def test_bad_inputs():
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("entropy-switch", threshold=1.0, size_ratio=0.0)
    with pytest.raises(xent_core.BadParameterError):
        xent_core.estimator("entropy-switch", threshold=1.0, size_ratio=0.5, window=0)
    est = xent_core.estimator("entropy-switch", threshold=1.0, size_ratio=0.5)
    with pytest.raises(xent_core.BadInputError):
        est([1.0, -0.5])
    with pytest.raises(xent_core.BadInputError):
        est([1.0, float("inf")])
    with pytest.raises(xent_core.BadInputError):
        est([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(xent_core.BadInputError):
        est([])
    with pytest.raises(xent_core.BadParameterError):
        switch_cost(1.2, 0.5)


@pytest.mark.parametrize("shape", [(1,), (3,), (5, 2), (64, 40), (2, 1)])
@pytest.mark.parametrize("window", [1, 3, 8])
def test_stateless_fast_path_matches_the_stepped_rule(shape, window):
    # hysteresis 0 and min_dwell 1 are decided from the rolling means at once; the rule stepped
    # one token at a time must agree, also on exact ties (integer entropies, threshold 1.5)
    rng = np.random.default_rng(window)
    for h in (rng.gamma(2.0, 0.7, size=shape), rng.integers(0, 4, size=shape).astype(float)):
        fast = switch_schedule(h, threshold=1.5, window=window)
        rule = EntropySwitch(threshold=1.5, window=window)
        rows = torch.as_tensor(h).reshape(-1, shape[-1])
        stepped = torch.stack([rule.step_entropy(s) for s in rows.T], dim=-1)
        assert torch.equal(fast.reshape(stepped.shape), stepped)
        assert fast.shape == torch.Size(shape)
