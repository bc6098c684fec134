"""compute-frontier (Henighan et al., arXiv:2010.14701; Chinchilla approach 1): the closed form of
the frontier of Chinchilla's law, a run on the bundled Chinchilla runs, bootstrap, plot, errors."""

from __future__ import annotations

import numpy as np
import pytest
from xent_fitters.datasets import chinchilla_data
from xent_fitters.frontier import chinchilla_frontier, extract_frontier, reducible_loss

import xent_core
from xent_core import BadInputError, BadParameterError, FitError

# the anchor parameters of the spec (Huber-sum fit of the Chinchilla runs)
LAW = dict(A=477.8, B=2143.0, E=1.8172, alpha=0.3473, beta=0.3672)


def _curves(n_sizes: int, n_tokens: int = 80) -> dict[str, np.ndarray]:
    """One run per model size (1e7 .. 1e12): the law's loss along D, at compute C = 6 N D,
    kept inside budgets 1e18 .. 1e24."""
    N = np.repeat(np.logspace(7, 12, n_sizes), n_tokens)
    D = np.tile(np.logspace(8, 15, n_tokens), n_sizes)
    C = 6 * N * D
    loss = LAW["E"] + LAW["A"] / N ** LAW["alpha"] + LAW["B"] / D ** LAW["beta"]
    keep = (C >= 1e18) & (C <= 1e24)
    return {"N": N[keep], "C": C[keep], "loss": loss[keep]}


def test_closed_form_matches_the_spec_numbers():
    cf = chinchilla_frontier(LAW)
    assert cf["a"] == pytest.approx(0.5139258223, abs=1e-10)
    assert cf["gamma"] == pytest.approx(0.1784864381, abs=1e-10)
    assert cf["G"] == pytest.approx(0.1132192681, rel=1e-9)
    assert cf["K"] == pytest.approx(1981.158266, rel=1e-9)
    assert LAW["E"] + cf["K"] * (1e21 / 6) ** -cf["gamma"] == pytest.approx(2.3042722827, abs=1e-9)
    assert cf["G"] * (1e21 / 6) ** cf["a"] == pytest.approx(2.7954e9, rel=1e-4)


def test_frontier_of_chinchilla_curves_converges_to_the_closed_form():
    cf = chinchilla_frontier(LAW)
    law = xent_core.scaling_model("compute-frontier", grid_points=60)
    coarse, fine = law.fit(_curves(41)), law.fit(_curves(161))
    exact_L = LAW["E"] + cf["K"] * (1e21 / 6) ** -cf["gamma"]
    exact_N = cf["G"] * (1e21 / 6) ** cf["a"]
    err = {}
    for name, fit in (("coarse", coarse), ("fine", fine)):
        # the envelope of finitely many sizes lies on or above the true frontier
        assert fit.predict(C=1e21) >= exact_L - 1e-6
        err[name] = abs(fit.predict(C=1e21) - exact_L)
    assert err["fine"] < err["coarse"] < 5e-4
    p = fine.params
    assert p["gamma"] == pytest.approx(cf["gamma"], abs=1e-4)
    assert p["E"] == pytest.approx(LAW["E"], abs=1e-4)
    assert p["A"] == pytest.approx(cf["K"] * 6 ** cf["gamma"], rel=2e-3)
    assert p["a"] == pytest.approx(cf["a"], abs=3e-3)
    assert coarse.params["a"] == pytest.approx(cf["a"], abs=1e-2)
    n_opt, d_opt = fine.compute_optimal(1e21)
    assert n_opt == pytest.approx(exact_N, rel=0.02) and n_opt * d_opt * 6 == pytest.approx(1e21)
    # irreducible and reducible split: E is the entropy estimate, the rest is D_KL
    assert fine.derived["irreducible"] == p["E"]
    assert reducible_loss(fine, 1e21) == pytest.approx(fine.predict(C=1e21) - p["E"])


def test_envelope_is_the_lowest_interpolated_curve():
    runs = [
        (1.0, np.array([1.0, 10.0, 100.0]), np.array([3.0, 2.0, 1.5])),
        (2.0, np.array([1.0, 10.0, 100.0]), np.array([3.5, 1.8, 1.2])),
        (3.0, np.array([10.0, 100.0]), np.array([2.5, 1.0])),
    ]
    f = extract_frontier(runs, grid_points=5, min_runs=2)  # log-grid 1, 3.16, 10, 31.6, 100
    np.testing.assert_allclose(f["C"], np.logspace(0, 2, 5))
    # at C = 3.16 only runs 1 and 2 cover it: interpolation half-way in log C
    np.testing.assert_allclose(f["loss"], [3.0, min(2.5, 2.65), 1.8, min(1.75, 1.5, 1.75), 1.0])
    np.testing.assert_array_equal(f["N"], [1.0, 1.0, 2.0, 2.0, 3.0])
    np.testing.assert_array_equal(f["n_runs"], [2, 2, 3, 3, 3])


def test_bundled_chinchilla_runs_give_a_frontier_close_to_approach_three(tmp_path):
    pytest.importorskip("matplotlib")
    d = chinchilla_data()
    fit = xent_core.scaling_model("compute-frontier", bootstrap=6, seed=1).fit(
        {"N": d["N"], "C": d["C"], "loss": d["loss"]}
    )
    # the frontier and the chinchilla law (approach 3) agree on the compute-optimal exponent
    assert fit.params["a"] == pytest.approx(0.5139, abs=0.03)
    assert fit.params["gamma"] == pytest.approx(0.1785, abs=0.01)
    assert fit.metrics["r2"] > 0.99 and fit.metrics["n_runs"] == len(np.unique(d["N"]))
    assert "a" in fit.intervals and fit.metrics["n_bootstrap"] >= 2
    path = tmp_path / "frontier.png"
    fit.plot(path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_units_per_sample_and_errors():
    fit = xent_core.scaling_model("compute-frontier", units_per_sample=3072).fit(_curves(21))
    assert fit.derived["irreducible_per_sample"] == pytest.approx(3072 * fit.params["E"])
    law = xent_core.scaling_model("compute-frontier")
    with pytest.raises(BadInputError, match="missing column"):
        law.fit({"N": [1.0, 2.0], "loss": [1.0, 2.0]})
    one = {"N": np.full(5, 1e8), "C": np.logspace(18, 20, 5), "loss": np.linspace(3, 2, 5)}
    with pytest.raises(FitError, match="two runs"):
        law.fit(one)
    apart = {
        "N": np.repeat([1e8, 1e9], 5),
        "C": np.r_[np.logspace(18, 19, 5), np.logspace(21, 22, 5)],
        "loss": np.r_[np.linspace(3, 2.8, 5), np.linspace(2.5, 2.3, 5)],
    }
    with pytest.raises(FitError, match="overlap"):
        law.fit(apart)
    with pytest.raises(BadParameterError):
        xent_core.scaling_model("compute-frontier", grid_points="x")
    with pytest.raises(BadParameterError):
        xent_core.scaling_model("compute-frontier", units_per_sample=0)


def test_through_xent_fit(tmp_path, capsys):
    import json

    from xent_core.cli import main

    d = _curves(21)
    path = tmp_path / "curves.csv"
    rows = "".join(f"{float(n)!r},{float(c)!r},{float(v)!r}\n" for n, c, v in zip(*d.values()))
    path.write_text("params,flops,final\n" + rows)
    args = ["fit", str(path), "-m", "compute-frontier", "--x", "N=params", "--x", "C=flops"]
    assert main([*args, "--y", "final", "-b", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "compute-frontier"
    assert out["params"]["gamma"] == pytest.approx(chinchilla_frontier(LAW)["gamma"], abs=1e-3)
    assert out["compute_optimal"][0]["C"] == 1e21
