"""``xent fit``: a Typer app built in the test, and the real ``xent`` entry point."""

from __future__ import annotations

import csv
import json

import pytest
import typer
from typer.testing import CliRunner
from xent_fitters.cli import fit_command
from xent_fitters.datasets import chinchilla_data

# one start next to the optimum keeps these runs short (the full grid is tested elsewhere)
ONE_START = "grid={'a': [6.0], 'b': [7.5], 'e': [0.6], 'alpha': [0.35], 'beta': [0.37]}"


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command("fit")(fit_command)

    @app.command("noop")  # a second command keeps 'fit' a sub-command
    def noop() -> None:
        pass

    return app


def test_default_run_fits_the_bundled_chinchilla_data(app, tmp_path):
    out = tmp_path / "fit.png"
    res = CliRunner().invoke(app, ["fit", "--bootstrap", "30", "--plot", str(out)])
    assert res.exit_code == 0, res.output
    text = res.output
    for needle in (
        "chinchilla",
        "240 points",
        "alpha",
        "beta",
        "95% interval",
        "compute-optimal",
        "N_opt",
        "D_opt",
        "1e+24",
        "477.8",
        "0.3473",
    ):
        assert needle in text, needle
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_json_output(app):
    res = CliRunner().invoke(app, ["fit", "--json", "--bootstrap", "8", "-o", ONE_START])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["model"] == "chinchilla"
    assert d["params"]["A"] == pytest.approx(477.8, abs=0.1)
    assert d["metrics"]["objective"] == pytest.approx(1.01827e-3, abs=5e-9)
    assert [row["C"] for row in d["compute_optimal"]] == [1e21, 1e22, 1e23, 1e24, 1e25]
    row = d["compute_optimal"][0]
    assert row["N_opt_interval"][0] < row["N_opt"] < row["N_opt_interval"][1]
    assert d["n_bootstrap"] == 8


def test_csv_with_mapped_columns(app, tmp_path):
    cols = chinchilla_data()
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["params", "tokens", "final_loss"])
        w.writerows(zip(cols["N"], cols["D"], cols["loss"]))
    args = ["fit", str(path), "--x", "N=params", "--x", "D=tokens", "--y", "final_loss"]
    res = CliRunner().invoke(app, [*args, "--json", "-b", "0", "-o", ONE_START])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["params"]["alpha"] == pytest.approx(0.3473, abs=5e-5)
    assert d["stderr"] == {}
    res = CliRunner().invoke(
        app,
        [
            "fit",
            str(path),
            "--model",
            "power-law",
            "--x",
            "N=params",
            "--y",
            "final_loss",
            "-b",
            "0",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output)["params"]) == {"E", "A", "alpha"}


def test_errors_through_the_real_entry_point(tmp_path, capsys):
    from xent_core.cli import main

    path = tmp_path / "runs.csv"
    path.write_text("size,loss\n1e8,3.1\n2e8,3.0\n")
    assert main(["fit", str(path), "-b", "0"]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) N, D; columns found: ['size', 'loss']" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["fit", str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fit", "--model", "power-law"]) == 2
    assert "bundled data fits only 'chinchilla'" in capsys.readouterr().err
    assert main(["fit", "--model", "chinchila"]) == 2
    assert "chinchilla" in capsys.readouterr().err  # did-you-mean
    assert main(["fit", "-o", "delta"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_real_entry_point_lists_the_command(capsys):
    from xent_core.cli import main

    assert main(["fit", "--help"]) == 0
    assert "--bootstrap" in capsys.readouterr().out
    assert main(["fit", "--json", "-b", "0", "-o", ONE_START]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"]["E"] == pytest.approx(1.8172, abs=5e-5)


def test_curve_laws_point_to_the_python_api(tmp_path):
    import subprocess
    import sys

    csv = tmp_path / "curve.csv"
    csv.write_text("step,lr,loss\n1,0.1,3.0\n2,0.1,2.9\n")
    code = "import sys; from xent_core.cli import main; sys.exit(main(sys.argv[1:]))"
    for law in ("multi-power", "lr-annealing"):
        out = subprocess.run(
            [sys.executable, "-c", code, "fit", str(csv), "--model", law],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2
        assert "Python API" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unidentifiable_data_exit_2_and_bound_warnings_are_shown(tmp_path, capsys):
    import numpy as np

    from xent_core.cli import main

    copies = tmp_path / "copies.csv"
    copies.write_text("N,D,loss\n" + "1e8,2e9,3.1\n" * 30)
    assert main(["fit", str(copies), "-b", "0"]) == 2
    err = capsys.readouterr().err
    assert "constant" in err and len(err.strip().splitlines()) == 1
    x = np.exp(np.linspace(0.0, 10.0, 12))
    rising = tmp_path / "rising.csv"
    rising.write_text(
        "N,loss\n" + "".join(f"{float(a)!r},{float(3 + 0.02 * np.log(a))!r}\n" for a in x)
    )
    args = ["fit", str(rising), "--model", "power-law", "-b", "0"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "warning: power-law: parameters at the bounds" in out.out.replace("\n", " ")
    assert "BoundWarning" not in out.err
    assert main([*args, "--json"]) == 0
    (w,) = json.loads(capsys.readouterr().out)["warnings"]
    assert "alpha = 0 (lower bound)" in w
