"""Step Law (Li et al., arXiv:2503.04715): the published bootstrap fits and example, the
near-optimal selection and OLS against pandas/numpy, synthetic recovery, the released dense sweep,
results and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from xent_fitters.datasets import STEPLAW_FIT_SUMMARY_CSV, STEPLAW_NEAR_OPTIMAL_CSV
from xent_fitters.step_law import StepLaw, step_law_predict

import xent_core
from xent_core import BadInputError, BadParameterError, FitError

# The upstream repository has no licence: the project ships only the 129 near-optimal runs and a
# summary of the published bootstrap fits (plugins/xent_fitters/data/README.md). The tests of the
# full files are opt-in (``python -m pytest -m opt_in``, deselected by default) and read
# XENT_STEPLAW_DATA, the data/ folder of a checkout of step-law/steplaw@32a8f4c.
FULL = Path(os.environ.get("XENT_STEPLAW_DATA", "/nonexistent"))
DENSE_FULL = FULL / "dense_lr_bs_loss.csv"
BOOT = FULL / "1004_fitted_lr_bs_scaling_model_parameters.csv"
_missing = pytest.mark.skipif(
    not (DENSE_FULL.is_file() and BOOT.is_file()),
    reason="full Step Law files are not shipped (no upstream licence): set XENT_STEPLAW_DATA to "
    "the data/ folder of github.com/step-law/steplaw at commit 32a8f4cc50247695fb56cc6c9117abdf67c97763",
)


def needs_full_data(test):
    """Opt-in (deselected by default) and skipped with the way to get the data if it is absent."""
    return pytest.mark.opt_in(_missing(test))


DENSE = STEPLAW_NEAR_OPTIMAL_CSV


def test_published_fit_constants_give_the_published_law_and_example():
    pd = pytest.importorskip("pandas")
    summary = pd.read_csv(STEPLAW_FIT_SUMMARY_CSV).set_index("statistic")
    mean = summary.loc["mean"]
    res = StepLaw.from_params(
        i=mean["lr_intercept"],
        cN=mean["lr_coefN"],
        cD=mean["lr_coefD"],
        j=mean["bs_intercept"],
        cB=mean["bs_coefD"],
    )
    # eta = 1.79 N^-0.713 D^0.307, B = 0.58 D^0.571 tokens (the paper's abstract)
    assert res.derived["lr_scale"] == pytest.approx(1.797, abs=5e-4)
    assert res.derived["batch_scale"] == pytest.approx(0.581, abs=5e-4)
    assert (round(res.params["cN"], 3), round(res.params["cD"], 3)) == (-0.713, 0.307)
    assert round(res.params["cB"], 3) == 0.571
    lr, bs = res.predict(N=7e9, D=1.4e12)
    assert f"{lr:.3g}" == "0.000935" and f"{bs:.2g}" == "5e+06"
    assert round(bs / 2048, -1) == 2440
    assert summary.loc["std", "lr_coefD"] == pytest.approx(0.0191, abs=2e-4)
    assert summary.loc["q2.5", "lr_coefD"] < 0.3075 < summary.loc["q97.5", "lr_coefD"]


@needs_full_data
def test_the_shipped_tables_are_the_published_files_derived():
    pd = pytest.importorskip("pandas")
    full = StepLaw.from_bootstrap(BOOT)
    summary = pd.read_csv(STEPLAW_FIT_SUMMARY_CSV).set_index("statistic")
    for name, col in zip(("i", "cN", "cD", "j", "cB"), summary.columns):
        assert full.params[name] == pytest.approx(summary.loc["mean", col], rel=1e-9)
        assert full.stderr[name] == pytest.approx(summary.loc["std", col], rel=1e-6)
    a = StepLaw(bootstrap=100, seed=3).fit(DENSE_FULL)
    b = StepLaw(bootstrap=100, seed=3).fit(DENSE)
    assert a.params == b.params and a.intervals == b.intervals
    assert a.metrics["n_runs"] == 1911 and b.metrics["n_runs"] == 129


@needs_full_data
def test_published_bootstrap_fits_give_the_published_law_and_example():
    res = StepLaw.from_bootstrap(BOOT)
    assert res.bootstrap.shape == (1000, 5)
    # eta = 1.79 N^-0.713 D^0.307, B = 0.58 D^0.571 tokens (README: means of the 1000 fits)
    assert res.derived["lr_scale"] == pytest.approx(1.797, abs=5e-4)
    assert res.params["cN"] == pytest.approx(-0.7129, abs=5e-5)
    assert res.params["cD"] == pytest.approx(0.3075, abs=5e-5)
    assert res.derived["batch_scale"] == pytest.approx(0.581, abs=5e-4)
    assert res.params["cB"] == pytest.approx(0.5709, abs=5e-5)
    lr, bs = res.predict(N=7e9, D=1.4e12)
    assert f"{lr:.3g}" == "0.000935" and f"{bs:.2g}" == "5e+06"
    assert round(bs / 2048, -1) == 2440
    lo, hi = res.intervals["cD"]
    assert lo < 0.3075 < hi and res.stderr["cD"] == pytest.approx(0.0191, abs=2e-4)
    # the paper's rounded constants
    rounded = StepLaw.from_params(i=np.log(1.79), cN=-0.713, cD=0.307, j=np.log(0.58), cB=0.571)
    assert f"{rounded.predict(N=7e9, D=1.4e12)[0]:.3g}" == "0.000917"


def test_selection_and_ols_match_an_independent_pandas_computation():
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(DENSE)
    best = df.groupby(["N", "D"])["smooth loss"].transform("min")
    kept = df[df["smooth loss"] <= best * 1.0025]
    fit = xent_core.scaling_model("step-law", bootstrap=400, seed=5).fit(DENSE)
    assert fit.metrics["n_points"] == len(kept) == 129
    assert fit.metrics["n_runs"] == len(df) and fit.metrics["n_groups"] == 17
    assert (
        fit.extra["loss_column"] == "smooth loss" and fit.extra["batch_from_sequences_of"] == 2048
    )
    np.testing.assert_allclose(np.sort(fit.data["batch_tokens"]), np.sort(kept["bs"] * 2048.0))
    X = np.c_[np.ones(len(kept)), np.log(kept["N"]), np.log(kept["D"])]
    ols_lr = np.linalg.lstsq(X, np.log(kept["lr"]), rcond=None)[0]
    ols_bs = np.polyfit(np.log(kept["D"]), np.log(kept["bs"] * 2048.0), 1)[::-1]
    np.testing.assert_allclose(list(fit.extra["ols"].values()), np.r_[ols_lr, ols_bs], rtol=1e-10)
    # the parameters are bootstrap means: close to OLS, well inside one standard error
    for k, v in fit.extra["ols"].items():
        assert abs(fit.params[k] - v) < 0.25 * fit.stderr[k], k
    # the same data as a DataFrame with the paper's column names mapped explicitly
    mapped = StepLaw(bootstrap=0).fit(
        df.rename(columns={"smooth loss": "final"}).assign(batch_tokens=df["bs"] * 2048),
        columns={"loss": "final"},
    )
    np.testing.assert_allclose(list(mapped.params.values()), np.r_[ols_lr, ols_bs], rtol=1e-10)


def test_released_dense_sweep_against_the_published_law():
    """The released dense sweep (1911 runs; its 129 near-optimal runs are shipped), fitted with the published rule, gives
    lr = 78 N^-0.768 D^0.198 and B = 0.21 D^0.611: the N exponent and the batch law agree with
    the paper's within our bootstrap 95% intervals, the D exponent of the learning rate does not
    (0.198, interval about [0.14, 0.26], against 0.307). The published fits evidently used runs
    beyond this file; this test pins the finding so a change in it is noticed."""
    fit = StepLaw(bootstrap=1000, seed=0).fit(DENSE)
    iv = fit.intervals
    assert iv["cN"][0] < -0.713 < iv["cN"][1]
    assert iv["cB"][0] < 0.571 < iv["cB"][1]
    assert iv["j"][0] < np.log(0.58) < iv["j"][1]
    assert iv["cD"][1] < 0.307 and fit.params["cD"] == pytest.approx(0.198, abs=0.005)
    lr, bs = fit.predict(N=7e9, D=1.4e12)
    assert bs == pytest.approx(5.0e6, rel=0.2)  # batch: within 20% of the published 5.0e6
    assert lr == pytest.approx(5.5e-4, rel=0.05)  # lr: 5.5e-4 against the published 9.35e-4


def _synthetic_sweep(rng, truth, noise=0.0):
    """Runs on a (lr, bs) grid per (N, D): loss is a bowl around the true optimum."""
    rows = []
    for N in (1.3e8, 3.1e8, 7.7e8):
        for D in (3e9, 1.1e10, 4.3e10):
            lr_opt, bs_opt = step_law_predict(truth, N=N, D=D)
            for dl in np.linspace(-1.2, 1.2, 9):
                for db in np.linspace(-1.5, 1.5, 7):
                    loss = 2.5 * (1 + 0.01 * dl**2 + 0.004 * db**2) + rng.normal(0, noise)
                    rows.append((N, D, lr_opt * np.exp(dl), bs_opt * np.exp(db), loss))
    N, D, lr, bt, loss = map(np.array, zip(*rows))
    return {"N": N, "D": D, "lr": lr, "batch_tokens": bt, "loss": loss}


def test_known_law_is_recovered_from_a_synthetic_sweep():
    truth = dict(i=0.9, cN=-0.65, cD=0.28, j=-0.3, cB=0.55)
    sweep = _synthetic_sweep(np.random.default_rng(0), truth)
    # without noise each group keeps the optimum and its 8 grid neighbours (0.01*0.3^2 +
    # 0.004*0.5^2 = 0.0019 <= 0.0025), a set symmetric about the optimum: the law is exact
    fit = StepLaw(threshold=0.0025, bootstrap=0).fit(sweep)
    assert fit.metrics["n_points"] == 9 * 9
    for k, v in truth.items():
        assert fit.params[k] == pytest.approx(v, abs=1e-9), k
    noisy = StepLaw(threshold=0.01, bootstrap=300, seed=4).fit(
        _synthetic_sweep(np.random.default_rng(1), truth, noise=2e-3)
    )
    for k, v in truth.items():
        lo, hi = noisy.intervals[k]
        assert lo <= v <= hi, (k, lo, v, hi)


def test_predict_broadcasts_and_serialises(tmp_path):
    res = StepLaw.from_params(i=0.5, cN=-0.7, cD=0.3, j=-0.5, cB=0.57)
    lr, bs = res.predict(N=np.array([1e8, 1e9, 1e10]), D=2e10)
    np.testing.assert_allclose(lr, np.exp(0.5) * np.array([1e8, 1e9, 1e10]) ** -0.7 * 2e10**0.3)
    np.testing.assert_allclose(bs, np.exp(-0.5) * 2e10**0.57)
    assert isinstance(res.predict(N=1e9, D=1e10)[0], float)
    payload = json.loads(res.to_json())
    assert payload["model"] == "step-law" and payload["derived"]["lr_scale"] == pytest.approx(
        np.exp(0.5)
    )
    with pytest.raises(BadInputError, match="> 0"):
        res.predict(N=-1.0, D=1e10)


def test_fit_plots_and_residuals(tmp_path):
    pytest.importorskip("matplotlib")
    truth = dict(i=0.9, cN=-0.65, cD=0.28, j=-0.3, cB=0.55)
    fit = StepLaw(threshold=0.003, bootstrap=50).fit(
        _synthetic_sweep(np.random.default_rng(2), truth, 1e-3)
    )
    assert fit.residuals().shape == (fit.metrics["n_points"], 2)
    path = tmp_path / "step.png"
    fit.plot(path)
    assert path.stat().st_size > 1000


def test_bad_sweeps_and_parameters():
    truth = dict(i=0.9, cN=-0.65, cD=0.28, j=-0.3, cB=0.55)
    sweep = _synthetic_sweep(np.random.default_rng(0), truth)
    with pytest.raises(BadInputError, match="missing column"):
        StepLaw().fit({k: v for k, v in sweep.items() if k != "lr"})
    one_n = {k: v[sweep["N"] == sweep["N"][0]] for k, v in sweep.items()}
    with pytest.raises(FitError, match="two model sizes"):
        StepLaw().fit(one_n)
    bad = dict(sweep, lr=np.where(np.arange(len(sweep["lr"])) == 3, 0.0, sweep["lr"]))
    with pytest.raises(BadInputError, match="'lr' must be > 0"):
        StepLaw().fit(bad)
    with pytest.raises(BadInputError, match="NaN"):
        StepLaw().fit(
            dict(sweep, loss=np.where(np.arange(len(sweep["lr"])) == 5, np.nan, sweep["loss"]))
        )
    with pytest.raises(BadInputError, match="missing column"):
        StepLaw.from_bootstrap({"lr_intercept": [0.5]})
    with pytest.raises(BadParameterError, match="missing"):
        StepLaw.from_params(i=1.0)
    with pytest.raises(BadParameterError):
        StepLaw(threshold=-0.1)
    with pytest.raises(BadParameterError):
        StepLaw(bootstrap=1)
