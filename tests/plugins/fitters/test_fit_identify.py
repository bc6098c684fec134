"""Identifiability: data that cannot determine a law are refused with FitError, parameters that end
on their bounds are flagged (issue 15, item 1; one test per example of the issue)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from xent_fitters.chinchilla import compute_optimal_exponents
from xent_fitters.datasets import MPL_CURVES_DIR, chinchilla_data
from xent_fitters.identify import BoundWarning, at_bounds
from xent_fitters.kaplan import KaplanLaw
from xent_fitters.schedules import load_mpl_curves

import xent_core
from xent_core import FitError

CHIN = chinchilla_data()


def _fit(cols, law="chinchilla", **opts):
    return xent_core.scaling_model(law, **opts).fit({k: cols[k] for k in ("N", "D", "loss")})


def test_thirty_copies_of_one_row_are_refused():
    rows = {k: np.repeat(v[:1], 30) for k, v in CHIN.items()}
    with pytest.raises(FitError, match="constant"):
        _fit(rows)


def test_constant_loss_is_refused_not_nan_optima():
    with pytest.raises(FitError, match="loss is constant"):
        _fit(dict(CHIN, loss=np.full(240, 2.5)))


def test_two_distinct_points_repeated_cannot_fit_five_parameters():
    rows = {k: np.repeat(v[[0, 100]], 3) for k, v in CHIN.items()}
    with pytest.raises(FitError, match=r"only 2 distinct .* for 5 free parameters"):
        _fit(rows)
    # the same count rule holds for a one-input law: 3 distinct x for 3 parameters
    x = np.repeat([1e8, 1e9, 1e10], 4)
    with pytest.raises(FitError, match="only 3 distinct"):
        xent_core.scaling_model("power-law").fit({"N": x, "loss": 2 + 50 * x**-0.2})


@pytest.mark.parametrize("value", [1.0, 1e300])
def test_constant_inputs_are_refused(value):
    with pytest.raises(FitError, match="input 'N' is constant"):
        _fit(dict(CHIN, N=np.full(240, value), D=np.full(240, value)))
    with pytest.raises(FitError, match="input 'D' is constant"):
        _fit(dict(CHIN, D=np.full(240, value)))


def test_inputs_whose_compute_overflows_are_refused():
    # varied, but 6 N D overflows float64: before, the optimum came out as D_opt = 0.15 tokens
    with pytest.raises(FitError, match="overflows"):
        _fit(dict(CHIN, N=CHIN["N"] * 1e290, D=CHIN["D"] * 1e289))


def test_no_trade_off_gives_nan_exponents_not_zero_division():
    d = compute_optimal_exponents({"A": 1.0, "B": 1.0, "E": 1.0, "alpha": 0.0, "beta": 0.0})
    assert all(np.isnan(v) for v in d.values())
    k = KaplanLaw().derived({"N_c": 1.0, "D_c": 1.0, "alpha_N": 0.0, "alpha_D": 0.0})
    assert np.isnan(k["a"])


def test_non_finite_compute_optimum_is_refused():
    # a law whose optimum does not exist (alpha at 0 on its bound) is refused for chinchilla
    law = xent_core.scaling_model("chinchilla")
    with pytest.raises(FitError, match="non-finite"):
        law._check_optimum({"E": 1.0, "A": 1.0, "B": 1.0, "alpha": 0.0, "beta": 0.3}, CHIN)
    law._check_optimum({"E": 1.8, "A": 478.0, "B": 2143.0, "alpha": 0.347, "beta": 0.367}, CHIN)


def test_well_posed_data_still_fit_without_warnings():
    fit = _fit(CHIN)
    assert fit.params["A"] == pytest.approx(477.8, abs=0.1) and fit.warnings == []
    assert fit.to_dict()["warnings"] == []


def test_a_parameter_on_its_bound_is_flagged_in_the_result_and_as_a_warning():
    x = np.exp(np.linspace(0.0, 10.0, 12))
    with pytest.warns(BoundWarning, match=r"alpha = 0 \(lower bound\)"):
        fit = xent_core.scaling_model("power-law").fit({"N": x, "loss": 3 + 0.02 * np.log(x)})
    assert len(fit.warnings) == 1 and "wider range of N" in fit.warnings[0]
    assert json.loads(fit.to_json())["warnings"] == fit.warnings
    assert "warning: power-law" in fit.summary()


def test_at_bounds_finds_both_sides_only():
    hits = at_bounds(("x", "y", "z"), np.array([0.0, 0.5, 1.0]), np.zeros(3), np.ones(3))
    assert hits == [("x", "lower", 0.0), ("z", "upper", 1.0)]


def test_multi_power_on_two_curves_names_the_unidentified_decay_shape():
    curves = load_mpl_curves(MPL_CURVES_DIR / "25M", ("constant_24000", "wsd_20000_24000"))
    law = xent_core.scaling_model("multi-power", max_evals=60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = law.fit(curves)
    assert fit.warnings, fit.params
    (msg,) = fit.warnings
    assert re.search(r"\bC = [-+.e0-9]+ \(lower bound\)", msg), msg
    assert "decay shape" in msg and "WSD" in msg
    assert any(issubclass(w.category, BoundWarning) for w in caught)


def test_siblings_refuse_a_constant_target():
    flat = np.full(30, 2.5)
    runs = {"C": np.repeat([1e19, 1e20, 1e21], 10), "N": np.tile(np.logspace(8, 10, 10), 3)}
    with pytest.raises(FitError, match="isoflop: the loss is constant"):
        xent_core.scaling_model("isoflop").fit({**runs, "loss": flat})
    with pytest.raises(FitError, match="R is constant"):
        xent_core.scaling_model("entropy-performance").fit(
            {"H": np.linspace(0.1, 1.0, 30), "R": np.full(30, 0.5)}
        )
    with pytest.raises(FitError, match="compute-frontier: the loss is constant"):
        xent_core.scaling_model("compute-frontier").fit(
            {"N": np.repeat([1e8, 2e8], 15), "C": np.tile(np.logspace(18, 20, 15), 2), "loss": flat}
        )


def test_a_flat_parabola_has_no_minimum():
    from xent_fitters.isoflop import parabola_minimum

    x = np.linspace(18.0, 22.0, 9)
    assert np.isnan(parabola_minimum(x, np.full(9, 2.5) + 1e-15 * x))
    assert parabola_minimum(x, 2.5 + 0.01 * (x - 20.3) ** 2) == pytest.approx(20.3)
