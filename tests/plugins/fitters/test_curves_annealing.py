"""The scaling law with LR annealing (Tissue et al., arXiv:2408.11029): the areas against a plain
loop, two-curve fits that predict the other schedules of a model size, and recovery."""

from __future__ import annotations

import numpy as np
import pytest
from xent_fitters.datasets import MPL_CURVES_DIR
from xent_fitters.lr_annealing import LRAnnealingLaw, annealing_areas, lr_annealing_predict
from xent_fitters.schedules import cosine_schedule, load_mpl_curves, wsd_schedule

import xent_core
from xent_core import FitError

CURVES = MPL_CURVES_DIR  # bundled copy, see plugins/xent_fitters/data/README.md


def loop_areas(lr, lam, k0):
    """S1 and S2 by the paper's recursion, one step at a time (float64 reference)."""
    S1, S2, m, s1, s2 = [], [], 0.0, 0.0, 0.0
    for i, eta in enumerate(lr):
        s1 += eta
        if i >= k0:
            m = lam * m + (lr[i - 1] - eta)
            s2 += m
        S1.append(s1)
        S2.append(s2)
    return np.array(S1), np.array(S2)


@pytest.mark.parametrize(
    ("lam", "warmup_steps", "k0"), [(0.999, None, 17), (0.99, 0, 1), (0.9, 40, 40)]
)
def test_areas_match_the_step_by_step_recursion(lam, warmup_steps, k0):
    rng = np.random.default_rng(3)
    lr = np.r_[np.linspace(0, 2e-3, 17), 2e-3 * (1 + 0.3 * np.sin(np.arange(466) / 9.0))]
    lr[300:] *= 0.2 + 0.01 * rng.random(183)  # a sharp anneal, then noise (re-warmups)
    S1, S2 = annealing_areas(lr, lam, warmup_steps)
    R1, R2 = loop_areas(lr, lam, k0)
    np.testing.assert_allclose(S1, R1, rtol=1e-13)
    np.testing.assert_allclose(S2, R2, rtol=1e-10, atol=1e-15)
    p = dict(L0=2.5, A=0.4, alpha=0.6, C=0.3)
    step = np.arange(5, 483, 11)
    np.testing.assert_allclose(
        lr_annealing_predict(p, lr, step, lam, warmup_steps),
        p["L0"] + p["A"] * R1[step] ** -p["alpha"] - p["C"] * R2[step],
        rtol=1e-12,
    )


def test_areas_of_a_constant_schedule_and_of_one_step_drop():
    lr = np.r_[np.linspace(0, 1e-3, 10), np.full(90, 1e-3), np.full(100, 4e-4)]
    S1, S2 = annealing_areas(lr, 0.9)
    assert np.all(S2[:100] == 0)  # warmup and the constant stretch: no annealing
    # after a single drop d at step 100: m_i = d * lam^(i-100), S2 = d * (1 - lam^(n+1)) / (1 - lam)
    n = np.arange(100)
    np.testing.assert_allclose(S2[100:], 6e-4 * (1 - 0.9 ** (n + 1)) / 0.1, rtol=1e-12)
    assert S1[-1] == pytest.approx(lr.sum())


@pytest.mark.parametrize("size", ["25M", "100M"])
@pytest.mark.parametrize(
    "pair", [("cosine_24000", "constant_24000"), ("constant_24000", "wsdcon_9")]
)
def test_two_curves_predict_the_other_schedules_of_a_size(size, pair):
    curves = load_mpl_curves(CURVES / size)
    train = [c for c in curves if c["name"] in pair]
    others = [c for c in curves if c["name"] not in pair]
    fit = xent_core.scaling_model("lr-annealing").fit(train)
    assert fit.converged and fit.metrics["r2"] > 0.998
    scores = fit.evaluate(others)
    assert len(scores["per_curve"]) == 7
    assert scores["r2"] >= 0.99, scores["per_curve"]
    assert 0.3 < fit.params["alpha"] < 0.7 and fit.params["C"] > 0


def _synthetic(truth, lam, noise, rng):
    warm = 50
    scheds = [cosine_schedule(4001, 2e-3, 2e-4, warm), wsd_schedule(4001, 3001, 2e-3, 1e-4, warm)]
    step = np.arange(warm, 4001, 25)
    return [
        {
            "lr": s,
            "step": step,
            "loss": lr_annealing_predict(truth, s, step, lam)
            * np.exp(rng.normal(0, noise, len(step))),
        }
        for s in scheds
    ]


def test_known_parameters_are_recovered_with_intervals():
    truth = dict(L0=2.6, A=0.45, alpha=0.55, C=0.35)
    clean = LRAnnealingLaw().fit(_synthetic(truth, 0.999, 0.0, np.random.default_rng(0)))
    for k, v in truth.items():
        assert clean.params[k] == pytest.approx(v, rel=1e-5), k
    noisy = LRAnnealingLaw(bootstrap=60, seed=2).fit(
        _synthetic(truth, 0.999, 3e-4, np.random.default_rng(1))
    )
    for k, v in truth.items():
        lo, hi = noisy.intervals[k]
        assert lo <= v <= hi, (k, lo, v, hi)


def test_decay_factor_can_be_selected():
    truth = dict(L0=2.6, A=0.45, alpha=0.55, C=0.35)
    curves = _synthetic(truth, 0.995, 0.0, np.random.default_rng(0))
    fit = LRAnnealingLaw(decay_factor=None).fit(curves)
    assert fit.extra["decay_factor"] == 0.995
    assert fit.params["C"] == pytest.approx(0.35, rel=1e-4)


def test_too_few_points():
    lr = np.r_[np.linspace(0, 1e-3, 10), np.full(90, 1e-3)]
    with pytest.raises(FitError, match="at least 5"):
        LRAnnealingLaw().fit([{"lr": lr, "step": [20, 40, 60, 80], "loss": [4.0, 3.8, 3.7, 3.6]}])
