"""isoflop (Chinchilla approach 2): Porian et al.'s compute-optimal exponents, recovery of the
exponents of a known Chinchilla law, intervals, and errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from xent_fitters.chinchilla import compute_optimal, predict_loss
from xent_fitters.datasets import PORIAN_CSV

import xent_core
from xent_core import BadInputError

PORIAN = PORIAN_CSV  # bundled copy, see plugins/xent_fitters/data/README.md

# Porian et al. (arXiv:2406.19146), their repository's fit_results: OLS of log N* on log C per configuration (summary_df, RefinedWeb)
PORIAN_EXPONENTS = {
    ("base", "long", "kaplan", "kaplan", "train"): 0.834,
    ("base", "long", "kaplan", "standard", "val"): 0.701,
    ("base", "short", "kaplan", "standard", "val"): 0.604,
    ("base", "short", "chinchilla", "standard", "val"): 0.571,
    ("tuned", "short", "const", "standard", "val"): 0.497,
}
OWT2_EXPONENTS = {
    ("base", "long", "kaplan", "kaplan", "train"): 0.870,
    ("base", "long", "kaplan", "standard", "val"): 0.700,
    ("base", "short", "kaplan", "standard", "val"): 0.602,
    ("base", "short", "chinchilla", "standard", "val"): 0.569,
    ("tuned", "short", "const", "standard", "val"): 0.518,
}


def _porian_rows(source):
    with PORIAN.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source_file"] == source]
    groups = {}
    for r in rows:
        key = (r["hparams"], r["warmup"], r["decay"], r["param_count"], r["loss_split"])
        if r["N_star"] in ("", "nan"):  # budgets without a located optimum
            continue
        g = groups.setdefault(key, {"flops": [], "N_star": [], "D_star": []})
        for k in g:
            g[k].append(float(r[k]))
    return groups


@pytest.mark.parametrize(
    ("source", "table"), [("summary_df", PORIAN_EXPONENTS), ("summary_df_owt2", OWT2_EXPONENTS)]
)
def test_porian_compute_optimal_exponents(source, table):
    groups = _porian_rows(source)
    law = xent_core.scaling_model("isoflop")
    for key, expected in table.items():
        fit = law.fit(groups[key], columns={"C": "flops", "N_opt": "N_star", "D_opt": "D_star"})
        assert round(fit.params["a"], 3) == pytest.approx(expected, abs=1e-9), key
        # the intervals (OLS t by default) bracket the estimate
        lo, hi = fit.intervals["a"]
        assert lo < fit.params["a"] < hi
        n, _ = fit.compute_optimal(1e18)
        assert np.log(n) == pytest.approx(
            np.log(fit.params["k_N"]) + fit.params["a"] * np.log(1e18)
        )


def test_porian_nan_rows_are_an_error_not_a_silent_drop():
    with PORIAN.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source_file"] == "summary_df"]
    rows = [r for r in rows if r["warmup"] == "long" and r["param_count"] == "standard"]
    data = {
        "C": [float(r["flops"]) for r in rows],
        "N_opt": [float(r["N_star"] or "nan") for r in rows],
    }
    with pytest.raises(BadInputError, match="NaN"):
        xent_core.scaling_model("isoflop").fit(data)


def _isoflop_runs(true, budgets, rng, noise=5e-4, with_d=True):
    rows = {"C": [], "N": [], "D": [], "loss": []}
    for C in budgets:
        n_opt, _ = compute_optimal(true, C)
        for f in np.exp(np.linspace(-1.0, 1.0, 9) + rng.normal(0, 0.02, 9)):
            N = n_opt * f
            D = C / (6 * N)
            rows["C"].append(C)
            rows["N"].append(N)
            rows["D"].append(D)
            rows["loss"].append(predict_loss(true, N=N, D=D) * np.exp(rng.normal(0, noise)))
    if not with_d:
        rows.pop("D")
    return {k: np.asarray(v) for k, v in rows.items()}


def test_approach_two_recovers_the_exponents_of_a_known_law():
    rng = np.random.default_rng(22)
    true = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    a_true = true["beta"] / (true["alpha"] + true["beta"])
    budgets = np.geomspace(6e18, 3e21, 7)
    data = _isoflop_runs(true, budgets, rng)
    fit = xent_core.scaling_model("isoflop", bootstrap=200, level=0.99).fit(data)
    assert fit.metrics["n_budgets"] == 7
    assert fit.params["a"] == pytest.approx(a_true, abs=0.01)
    assert fit.params["b"] == pytest.approx(1 - a_true, abs=0.01)
    for k in ("a", "b"):
        lo, hi = fit.intervals[k]
        assert lo <= (a_true if k == "a" else 1 - a_true) <= hi
    assert fit.extra["interval_method"] == "bootstrap-percentile"
    # per-budget optima sit near the true compute-optimal N
    n_true, _ = compute_optimal(true, np.asarray(fit.extra["optima"]["C"]))
    np.testing.assert_allclose(fit.extra["optima"]["N_opt"], n_true, rtol=0.05)
    # without a D column, D* = C / (6 N*) so a + b = 1 exactly
    no_d = xent_core.scaling_model("isoflop").fit(_isoflop_runs(true, budgets, rng, with_d=False))
    assert no_d.params["a"] + no_d.params["b"] == pytest.approx(1.0)


def test_parabola_minimum_is_exact_for_a_parabola():
    x = np.linspace(17, 23, 7)
    rows = {"C": np.repeat([1e19, 1e20, 1e21], 7), "N": np.exp(np.tile(x, 3))}
    centers = np.repeat([19.1, 20.3, 21.5], 7)
    rows["loss"] = 2.5 + 0.05 * (np.log(rows["N"]) - centers) ** 2
    fit = xent_core.scaling_model("isoflop").fit(rows)
    np.testing.assert_allclose(np.log(fit.extra["optima"]["N_opt"]), [19.1, 20.3, 21.5], atol=1e-9)
    slope = np.polyfit(np.log([1e19, 1e20, 1e21]), [19.1, 20.3, 21.5], 1)[0]
    assert fit.params["a"] == pytest.approx(slope, rel=1e-9)


def test_isoflop_errors():
    law = xent_core.scaling_model("isoflop")
    C = np.repeat([1e19, 1e20], 5)
    N = np.exp(np.tile(np.linspace(18, 22, 5), 2))
    with pytest.raises(BadInputError, match="at least 9"):
        law.fit({"C": C[:6], "N": N[:6], "loss": np.ones(6)})
    with pytest.raises(BadInputError, match="at least 3 are needed"):
        law.fit({"C": C, "N": N, "loss": 3 + (np.log(N) - 20) ** 2})
    with pytest.raises(BadInputError, match=r"missing column\(s\) loss"):
        law.fit({"C": C, "N": N})
    concave = {"C": np.repeat([1e19, 1e20, 1e21], 5), "N": np.tile(N[:5], 3)}
    concave["loss"] = 3 - 0.1 * (np.log(concave["N"]) - 20) ** 2
    with pytest.raises(BadInputError, match="convex"):
        law.fit(concave)


def test_power_law_reproduces_porians_stored_loss_fit():
    """README: tuned RW, L*(C) = E + A C^-alpha with E = 2.0056, A = 128.93, alpha = 0.1060,
    fitted in log space on flops in (1e16, 5e17); a quadratic loss (delta large) is that fit."""
    with PORIAN.open(newline="") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["source_file"] == "summary_df"
            and r["hparams"] == "tuned"
            and 1e16 < float(r["flops"]) < 5e17
        ]
    data = {"C": [float(r["flops"]) for r in rows], "loss": [float(r["loss_star"]) for r in rows]}
    fit = xent_core.scaling_model("power-law", x="C", delta=1.0).fit(data)
    assert fit.params["E"] == pytest.approx(2.0056, abs=5e-5)
    assert fit.params["A"] == pytest.approx(128.93, abs=5e-3)
    assert fit.params["alpha"] == pytest.approx(0.1060, abs=5e-5)


# regression: a budget left out of the fit (too few runs) must stay out of the bootstrap
def _isoflop_runs_with_a_small_outlier_budget() -> dict[str, np.ndarray]:
    # four budgets of 7 runs on N* = 0.1 C^0.5, and one budget of 4 runs whose optimum is 100x
    # off: min_points=5 leaves that budget out of the fit, so it must stay out of the bootstrap.
    rng = np.random.default_rng(0)
    C, N, L = [], [], []
    for c, npts, off in [(1e18, 7, 1), (1e19, 7, 1), (1e20, 7, 1), (1e21, 7, 1), (1e22, 4, 100)]:
        n_star = 0.1 * c**0.5 * off
        for x in np.linspace(-1.0, 1.0, npts):
            C.append(c)
            N.append(n_star * np.exp(x))
            L.append(2.0 + 0.1 * x * x + rng.normal(0.0, 1e-4))
    return {"C": np.array(C), "N": np.array(N), "loss": np.array(L)}


def test_isoflop_bootstrap_uses_the_same_budgets_as_the_fit() -> None:
    data = _isoflop_runs_with_a_small_outlier_budget()
    fit = xent_core.scaling_model("isoflop", min_points=5, bootstrap=100, seed=1).fit(data)
    assert fit.metrics["n_budgets"] == 4.0
    assert abs(fit.params["a"] - 0.5) < 1e-3
    lo, hi = fit.intervals["a"]
    assert lo <= fit.params["a"] <= hi
    assert hi - lo < 0.01  # with the left-out budget the replicates reached a = 0.9
