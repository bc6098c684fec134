"""power-law, kaplan, nmt-bivariate, data-constrained and entropy-performance: recovery of known
parameters, closed forms against numeric optima, and errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from xent_fitters import LAWS
from xent_fitters.data_constrained import predict_data_constrained
from xent_fitters.kaplan import predict_kaplan
from xent_fitters.nmt_bivariate import predict_nmt

import xent_core
from xent_core import BadInputError, BadParameterError, FitError, XentError


def _inside(fit, true):
    for name, value in true.items():
        lo, hi = fit.intervals[name]
        assert lo <= value <= hi, (name, value, (lo, hi))


def test_every_law_is_registered_with_its_metadata():
    specs = {s.name: s for s in xent_core.list_components("scaling_model", plugin="fitters")}
    assert set(LAWS) <= set(specs), sorted(set(LAWS) - set(specs))
    for name in LAWS:
        spec = specs[name]
        assert spec.summary and spec.citations, name
        assert all(c.arxiv.startswith("arXiv:") for c in spec.citations), name
    assert "bootstrap" in specs["chinchilla"].param_names
    assert "x" in specs["power-law"].param_names


def test_power_law_recovers_parameters():
    rng = np.random.default_rng(5)
    true = {"E": 1.7, "A": 420.0, "alpha": 0.33}
    C = np.exp(rng.uniform(np.log(1e6), np.log(1e11), 41))
    loss = (true["E"] + true["A"] * C ** -true["alpha"]) * np.exp(rng.normal(0, 0.003, 41))
    law = xent_core.scaling_model("power-law", x="C", bootstrap=100, level=0.99)
    fit = law.fit({"C": C, "loss": loss})
    _inside(fit, true)
    assert fit.predict(C=1e8) == pytest.approx(true["E"] + true["A"] * 1e8**-0.33, rel=5e-3)
    with pytest.raises(XentError, match="does not apply"):
        fit.compute_optimal(1e21)
    pure = xent_core.scaling_model("power-law", x="C", irreducible=False).fit(
        {"C": C, "loss": true["A"] * C ** -true["alpha"]}
    )
    assert set(pure.params) == {"A", "alpha"}
    assert pure.params["alpha"] == pytest.approx(0.33, rel=1e-6)
    with pytest.raises(BadInputError, match=r"missing column\(s\) C"):
        law.fit({"N": C, "loss": loss})


def test_power_law_heldout_metrics():
    rng = np.random.default_rng(6)
    N = np.exp(rng.uniform(np.log(1e6), np.log(1e10), 30))
    loss = 2.0 + 50 * N**-0.2 * np.exp(rng.normal(0, 0.002, 30))
    big = N > 1e9
    fit = xent_core.scaling_model("power-law").fit(
        {"N": N[~big], "loss": loss[~big]}, heldout={"N": N[big], "loss": loss[big]}
    )
    pred = fit.predict(N=N[big])
    assert fit.metrics["heldout_mae"] == pytest.approx(np.mean(np.abs(loss[big] - pred)))
    assert fit.metrics["heldout_n_points"] == big.sum()
    assert fit.metrics["heldout_mae"] < 0.01


def test_kaplan_recovers_parameters_and_its_optimum():
    rng = np.random.default_rng(2001)
    true = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    n = 73
    N = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), n))
    loss = predict_kaplan(true, N=N, D=D) * np.exp(rng.normal(0, 0.002, n))
    fit = xent_core.scaling_model("kaplan", bootstrap=60, level=0.99).fit(
        {"N": N, "D": D, "loss": loss}
    )
    _inside(fit, true)
    C = 1e21
    n_opt, d_opt = fit.compute_optimal(C)

    def at(logn):
        return predict_kaplan(fit.params, N=np.exp(logn), D=C / (6 * np.exp(logn)))

    ref = minimize_scalar(at, bounds=(0, 60), method="bounded", options={"xatol": 1e-10})
    assert np.log(n_opt) == pytest.approx(ref.x, abs=1e-4)
    assert 6 * n_opt * d_opt == pytest.approx(C)
    a = fit.params["alpha_D"] / (fit.params["alpha_N"] + fit.params["alpha_D"])
    assert fit.derived["a"] == pytest.approx(a)


def test_nmt_bivariate_recovers_parameters_and_optimal_split():
    rng = np.random.default_rng(2109)
    true = {"alpha": 0.52, "p_e": 0.31, "p_d": 0.47, "L_inf": 1.18}
    n = 49
    Ne = np.exp(rng.uniform(np.log(5e7), np.log(3e9), n))
    Nd = np.exp(rng.uniform(np.log(5e7), np.log(3e9), n))
    loss = predict_nmt(true, Ne=Ne, Nd=Nd, Ne_bar=4e8, Nd_bar=4e8)
    loss = loss * np.exp(rng.normal(0, 0.002, n))
    fit = xent_core.scaling_model("nmt-bivariate", Ne_bar=4e8, Nd_bar=4e8, bootstrap=60, level=0.99)
    fit = fit.fit({"Ne": Ne, "Nd": Nd, "loss": loss})
    _inside(fit, true)
    total = 1.3e9
    ne, nd = fit.optimal_split(total)
    assert ne + nd == pytest.approx(total)

    def at(frac):
        return fit.predict(Ne=frac * total, Nd=(1 - frac) * total)

    ref = minimize_scalar(at, bounds=(1e-4, 1 - 1e-4), method="bounded", options={"xatol": 1e-10})
    assert ne / total == pytest.approx(ref.x, abs=1e-5)
    assert fit.derived["encoder_fraction"] == pytest.approx(ne / total)
    # default reference sizes are the geometric means; the fitted curve does not depend on them
    other = xent_core.scaling_model("nmt-bivariate").fit({"Ne": Ne, "Nd": Nd, "loss": loss})
    assert other.extra["Ne_bar"] == pytest.approx(np.exp(np.log(Ne).mean()))
    np.testing.assert_allclose(
        other.predict(Ne=Ne[:5], Nd=Nd[:5]), fit.predict(Ne=Ne[:5], Nd=Nd[:5]), rtol=1e-6
    )
    assert other.params["p_e"] == pytest.approx(fit.params["p_e"], rel=1e-5)


def _constrained_data(rng, n=160):
    N = np.exp(rng.uniform(np.log(1e7), np.log(3e9), n))
    D = np.exp(rng.uniform(np.log(1e8), np.log(2e11), n))
    repeated = rng.random(n) < 0.5
    U = np.where(repeated, D / np.exp(rng.uniform(0.2, np.log(80), n)), D * 1.5)
    return N, D, U


def test_data_constrained_recovers_decay_constants():
    rng = np.random.default_rng(2305)
    base = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353}
    true = {**base, "R_N_star": 5.3, "R_D_star": 15.4}
    N, D, U = _constrained_data(rng)
    loss = predict_data_constrained(true, N=N, D=D, U=U) * np.exp(rng.normal(0, 0.002, len(N)))
    fit = xent_core.scaling_model("data-constrained", bootstrap=40, level=0.99).fit(
        {"N": N, "D": D, "U": U, "loss": loss}
    )
    _inside(fit, true)
    assert fit.params["R_D_star"] == pytest.approx(15.4, rel=0.25)
    # with the base given, only R_N*, R_D* are fitted and the base is kept as is
    fixed = xent_core.scaling_model("data-constrained", base=base).fit(
        {"N": N, "D": D, "U": U, "loss": loss}
    )
    assert {k: fixed.params[k] for k in base} == base
    assert fixed.params["R_D_star"] == pytest.approx(15.4, rel=0.1)
    # single-epoch rows are the base law: D' = D and N' = N when nothing repeats
    one = predict_data_constrained(true, N=np.array([1e8]), D=np.array([1e10]), U=np.array([2e10]))
    assert one == pytest.approx(1.87 + 521.0 * 1e8**-0.353 + 1488.0 * 1e10**-0.353)


def test_data_constrained_errors():
    rng = np.random.default_rng(1)
    N, D, _ = _constrained_data(rng, 30)
    loss = np.full(30, 3.0)
    law = xent_core.scaling_model("data-constrained")
    with pytest.raises(BadInputError, match="no row repeats data"):
        law.fit({"N": N, "D": D, "U": D * 2, "loss": loss})
    with pytest.raises(BadInputError, match="single-epoch rows"):
        law.fit({"N": N, "D": D, "U": D / 2, "loss": loss})
    with pytest.raises(BadParameterError, match="missing"):
        xent_core.scaling_model("data-constrained", base={"E": 1.0})


def test_entropy_performance_matches_least_squares_and_ceiling():
    rng = np.random.default_rng(101)
    H = rng.uniform(0.05, 1.3, 37)
    R = -0.38 * np.exp(H) + 0.97 + rng.normal(0, 0.01, 37)
    fit = xent_core.scaling_model("entropy-performance", bootstrap=300).fit({"H": H, "R": R})
    slope, intercept = np.polyfit(np.exp(H), R, 1)
    assert fit.params["a"] == pytest.approx(-slope, rel=1e-9)
    assert fit.params["b"] == pytest.approx(intercept, rel=1e-9)
    assert fit.derived["ceiling"] == pytest.approx(intercept + slope)
    assert fit.predict(H=0.0) == pytest.approx(fit.derived["ceiling"])
    boot = fit.bootstrap
    np.testing.assert_allclose(boot[:, 2], boot[:, 1] - boot[:, 0])
    lo, hi = fit.intervals["ceiling"]
    assert lo < fit.derived["ceiling"] < hi
    with pytest.raises(FitError, match="all entropies are equal"):
        xent_core.scaling_model("entropy-performance").fit({"H": [0.5] * 4, "R": [0.1] * 4})
    with pytest.raises(BadInputError, match="NaN"):
        xent_core.scaling_model("entropy-performance").fit({"H": [0.5, np.nan, 1], "R": [1, 2, 3]})


def test_plots_of_every_law(tmp_path):
    pytest.importorskip("matplotlib", reason="plotting needs the plot extra")
    rng = np.random.default_rng(3)
    H = rng.uniform(0.05, 1.3, 12)
    fit = xent_core.scaling_model("entropy-performance").fit({"H": H, "R": 0.9 - 0.3 * np.exp(H)})
    fit.plot(tmp_path / "e.png")
    N = np.exp(rng.uniform(15, 22, 12))
    fit = xent_core.scaling_model("power-law").fit({"N": N, "loss": 2 + 30 * N**-0.3})
    fit.plot(tmp_path / "p.png")
    for name in ("e.png", "p.png"):
        assert (tmp_path / name).stat().st_size > 1000
