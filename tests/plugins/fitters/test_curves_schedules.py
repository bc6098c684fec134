"""LR schedules of the Multi-Power Law data, curve checks, curve metrics and curve results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from xent_fitters.datasets import MPL_CURVES_DIR
from xent_fitters.lr_annealing import LRAnnealingLaw
from xent_fitters.multi_power import MultiPowerLaw
from xent_fitters.schedules import (
    MPL_TEST,
    MPL_TRAIN,
    check_curves,
    constant_schedule,
    cosine_schedule,
    curve_metrics,
    load_mpl_curves,
    mpl_schedule,
    two_stage_schedule,
    wsd_schedule,
)

from xent_core import BadInputError, BadParameterError, XentError

CURVES = MPL_CURVES_DIR  # bundled copy, see plugins/xent_fitters/data/README.md


@pytest.mark.parametrize("size", ["25M", "100M"])
def test_regenerated_schedules_match_the_logged_learning_rates(size):
    curves = load_mpl_curves(CURVES / size)
    assert sorted(c["name"] for c in curves) == sorted(MPL_TRAIN + MPL_TEST)
    for c in curves:
        # the CSV logs the learning rate at each sampled step: an independent record
        np.testing.assert_allclose(c["lr"][c["step"]], c["logged_lr"], rtol=1e-12, atol=0)
        assert c["step"].max() < len(c["lr"])
        assert len(c["step"]) == len(c["loss"]) > 90


def test_schedule_shapes_from_their_definitions():
    warm, peak, final = 2160, 3e-4, 3e-5
    cos = cosine_schedule(24000)
    assert len(cos) == 24000
    assert (
        cos[0] == 0.0 and cos[warm - 1] == pytest.approx(peak) and cos[warm] == pytest.approx(peak)
    )
    np.testing.assert_allclose(np.diff(cos[:warm]), peak / (warm - 1))
    s = 13001  # halfway through the decay (odd step): cosine at (s - warm) / (total - warm)
    expect = final + 0.5 * (peak - final) * (1 + math.cos(math.pi * (s - warm) / (24000 - warm)))
    assert cos[s] == pytest.approx(expect, rel=1e-14)
    assert np.all(np.diff(cos[warm:]) < 0)

    const = constant_schedule(72000)
    assert np.all(const[warm:] == peak)

    two = two_stage_schedule(16000, low=9e-5, switch=8000)
    assert np.all(two[warm:8000] == peak) and np.all(two[8000:] == 9e-5)
    np.testing.assert_array_equal(mpl_schedule("wsdcon_9"), two)

    geo = wsd_schedule(24000, 20000)
    lin = wsd_schedule(24000, 20000, shape="linear")
    f = (23001 - 20000) / 4000
    assert geo[23001] == pytest.approx(peak ** (1 - f) * final**f, rel=1e-13)
    assert lin[23001] == pytest.approx((1 - f) * peak + f * final, rel=1e-13)
    assert np.all(geo[warm:20000] == peak) and np.all(np.diff(geo[20000:]) < 0)
    # geometric decay: constant ratio between steps
    ratios = geo[20001:] / geo[20000:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-10)
    np.testing.assert_array_equal(mpl_schedule("wsdld_20000_24000.csv"), lin)


@pytest.mark.parametrize("bad", ["cosine", "linear_100", "wsd_20000", "cosine_1_2", "wsdcon_3_4"])
def test_unknown_schedule_names(bad):
    with pytest.raises(BadInputError, match="schedule"):
        mpl_schedule(bad)


def test_schedule_bounds():
    with pytest.raises(BadInputError, match="warmup"):
        cosine_schedule(100, warmup=100)
    with pytest.raises(BadInputError, match="step"):
        two_stage_schedule(1000, low=1e-5, switch=5000, warmup=10)
    with pytest.raises(BadInputError, match="shape"):
        wsd_schedule(1000, 500, warmup=10, shape="cosine")


def test_curve_metrics_against_hand_computation():
    rng = np.random.default_rng(11)
    loss = 3.0 + rng.random(37)
    pred = loss + rng.normal(0, 0.01, 37)
    m = curve_metrics(loss, pred)
    err = pred - loss
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert m["prede"] == pytest.approx(np.mean(np.abs(err) / loss))
    assert m["worste"] == pytest.approx(np.max(np.abs(err) / loss))
    ss_res, ss_tot = np.sum(err**2), np.sum((loss - loss.mean()) ** 2)
    assert m["r2"] == pytest.approx(1 - ss_res / ss_tot)


def _curve(**over):
    lr = np.r_[0.0, np.full(99, 1e-3)]
    c = {"lr": lr, "step": np.arange(5, 100, 10), "loss": np.linspace(4, 3, 10)}
    c.update(over)
    return c


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"loss": np.linspace(4, 3, 9)}, "9 values but 'step' has 10"),
        ({"step": np.arange(15, 115, 10)}, "steps must lie in"),
        ({"step": np.arange(0, 100, 10)}, "steps must lie in"),  # lr[0] == 0: S1(0) = 0
        ({"step": np.arange(5, 100, 10) + 0.5}, "integer"),
        ({"loss": np.r_[np.linspace(4, 3, 9), np.nan]}, "NaN"),
        ({"lr": np.r_[0.0, np.full(98, 1e-3), np.inf]}, "NaN/inf"),
        ({"lr": np.r_[0.0, 1e-3, 0.0, np.full(97, 1e-3)]}, r"lr\[2\] = 0"),
        ({"lr": np.r_[-1e-3, np.full(99, 1e-3)]}, r"lr\[0\]"),
        ({"loss": np.r_[np.linspace(4, 3, 9), -1.0]}, "losses must be > 0"),
        ({"lr": np.ones((10, 10))}, "1-D"),
    ],
)
def test_bad_curves_are_rejected_with_a_clear_message(over, match):
    with pytest.raises(BadInputError, match=match):
        check_curves([_curve(**over)])
    # every law rejects them the same way, before any fitting
    with pytest.raises(BadInputError, match=match):
        LRAnnealingLaw().fit([_curve(**over)])
    with pytest.raises(BadInputError, match=match):
        MultiPowerLaw().fit([_curve(**over)])


def test_bad_curve_containers():
    with pytest.raises(BadInputError, match="no curves"):
        check_curves([])
    with pytest.raises(BadInputError, match="list of dicts"):
        check_curves("curves.csv")
    with pytest.raises(BadInputError, match="expected a dict"):
        check_curves([np.zeros(3)])
    c = _curve()
    del c["loss"]
    with pytest.raises(BadInputError, match="missing key"):
        check_curves([c])
    assert len(check_curves(_curve())) == 1  # a single dict is one curve
    assert issubclass(BadInputError, XentError)


def test_given_parameters_are_checked():
    with pytest.raises(BadParameterError, match="missing"):
        MultiPowerLaw.from_params(L0=3.0, A=0.5)
    with pytest.raises(BadParameterError, match="unknown"):
        LRAnnealingLaw.from_params(L0=3.0, A=0.5, alpha=0.5, C=0.4, B=1.0)
    with pytest.raises(BadParameterError, match="finite"):
        LRAnnealingLaw.from_params(L0=np.nan, A=0.5, alpha=0.5, C=0.4)
    with pytest.raises(BadParameterError, match="'C' must be >= 0"):
        MultiPowerLaw.from_params(L0=3.0, A=0.5, alpha=0.5, B=300.0, C=-1.0, beta=0.5, gamma=0.5)
    with pytest.raises(BadParameterError):
        MultiPowerLaw(huber_delta=0)
    with pytest.raises(BadParameterError):
        LRAnnealingLaw(decay_factor=1.0)
    with pytest.raises(BadParameterError):
        LRAnnealingLaw(bootstrap=1)


def test_curve_result_serialises_predicts_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    res = LRAnnealingLaw.from_params(L0=3.0, A=0.5, alpha=0.5, C=0.4)
    c = _curve(
        lr=cosine_schedule(3001, peak=1e-3, final=1e-4, warmup=101), step=np.arange(101, 3001, 50)
    )
    c["loss"] = res.predict(lr=c["lr"], step=c["step"])
    assert res.evaluate([c])["r2"] == pytest.approx(1.0)
    with pytest.raises(BadInputError, match="lr="):
        res.predict(N=1.0)
    payload = json.loads(res.to_json())
    assert payload["model"] == "lr-annealing" and set(payload["params"]) == {
        "L0",
        "A",
        "alpha",
        "C",
    }
    path = tmp_path / "curves.png"
    res.plot(path, curves=[c])
    assert path.stat().st_size > 1000
