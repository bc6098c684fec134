"""``xent fit`` on bad files, options and outputs: exit 2 with one stderr line (a JSON error object
on stdout under ``--json``), strict JSON, bounded bootstrap memory (issue 15, items 10 and 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from xent_fitters import engine
from xent_fitters.cli import _literal
from xent_fitters.engine import bootstrap_counts, bootstrap_fit

import xent_core
from xent_core.cli import main

ONE_START = "grid={'a': [6.0], 'b': [7.5], 'e': [0.6], 'alpha': [0.35], 'beta': [0.37]}"


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"non-JSON token {name}")

    return json.loads(text, parse_constant=no_constant)


def _one_line_exit_2(capsys, args, needle):
    assert main(args) == 2
    out = capsys.readouterr()
    assert needle in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1, out.err
    assert "Traceback" not in out.err
    return out


def test_non_utf8_csv(tmp_path, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"N,D,loss\n1e8,2e9,3.1\n" + "caf\xe9\n".encode("latin-1"))
    _one_line_exit_2(capsys, ["fit", str(path)], "not UTF-8")


def test_csv_field_over_128_kib(tmp_path, capsys):
    path = tmp_path / "huge.csv"
    path.write_text("N,D,loss\n1e8,2e9," + "7" * (129 * 1024) + "\n")
    _one_line_exit_2(capsys, ["fit", str(path)], "field larger than field limit")


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("delta=abc", "delta must be a number"),
        ("delta=-1", "delta must lie in"),
        ("level=2", "level must lie in"),
        ("seed=x", "seed must be an integer"),
        ("seed=-1", "seed must be an integer"),
        ("n_polish=1.5", "n_polish must be an integer"),
        ("search=1", "search must be one of"),
        ("objective=l1", "objective must be one of"),
        ("grid=x", "grid must be"),
        ("progress='yes'", "progress"),
    ],
)
def test_wrongly_typed_options(capsys, option, needle):
    _one_line_exit_2(capsys, ["fit", "-b", "0", "-o", option], needle)


@pytest.mark.parametrize(
    ("law", "option"),
    [
        ("isoflop", "min_points=abc"),
        ("isoflop", "budget_rtol=abc"),
        ("isoflop", "level=abc"),
        ("step-law", "threshold=abc"),
        ("step-law", "seq_len=abc"),
        ("entropy-performance", "bootstrap=abc"),
        ("multi-power", "max_evals=abc"),
        ("lr-annealing", "decay_factor=abc"),
        ("power-law", "irreducible='no'"),
        ("data-constrained", "base=1.5"),
    ],
)
def test_every_law_checks_its_option_types(law, option):
    key, _, value = option.partition("=")
    with pytest.raises(xent_core.BadParameterError):
        xent_core.scaling_model(law, **{key: _literal(value)})  # as the CLI parses -o


def test_plot_path_is_checked_before_the_fit(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "xent_fitters.law.HuberLaw._search", lambda *a, **k: calls.append(1) or 1 / 0
    )
    _one_line_exit_2(capsys, ["fit", "--plot", str(tmp_path / "fit.xyz")], "unsupported format")
    _one_line_exit_2(
        capsys, ["fit", "--plot", str(tmp_path / "nope" / "fit.png")], "does not exist"
    )
    _one_line_exit_2(capsys, ["fit", "--plot", str(tmp_path)], "is a folder")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("x")
            writable = True  # running as root: permissions do not stop us
        except OSError:
            writable = False
        if not writable:
            _one_line_exit_2(capsys, ["fit", "--plot", str(locked / "fit.png")], "not writable")
    finally:
        locked.chmod(0o700)
    assert calls == []  # the fit never started
    assert not (tmp_path / "fit.png").exists()


def test_json_errors_are_json_on_stdout(capsys):
    out = _one_line_exit_2(capsys, ["fit", "--json", "-o", "delta=abc"], "delta")
    err = _strict(out.out)["error"]
    assert err["type"] == "BadParameterError" and err["exit_code"] == 2


def test_json_never_holds_nan_tokens(capsys, monkeypatch):
    import xent_fitters.cli as cli

    def nan_table(result):
        return [{"C": 1e21, "N_opt": float("nan"), "D_opt": float("inf")}]

    monkeypatch.setattr(cli, "_optimal_table", nan_table)
    assert main(["fit", "--json", "-b", "0", "-o", ONE_START]) == 0
    d = _strict(capsys.readouterr().out)
    assert d["compute_optimal"][0]["N_opt"] is None and d["compute_optimal"][0]["D_opt"] is None


def test_a_bootstrap_that_cannot_fit_in_memory_is_refused_before_it_starts(capsys, monkeypatch):
    monkeypatch.setattr(engine, "available_memory", lambda: 2**30)  # 1 GiB free
    out = _one_line_exit_2(capsys, ["fit", "-b", "20000000"], "use at most")
    assert "GiB" in out.err
    with pytest.raises(xent_core.BadParameterError, match="bootstrap=20000000"):
        xent_core.scaling_model("step-law", bootstrap=20_000_000).fit(
            {
                "N": [1e8, 1e8, 2e8, 2e8] * 3,
                "D": [1e9, 2e9, 1e9, 2e9] * 3,
                "lr": np.linspace(1e-3, 2e-3, 12),
                "batch_tokens": np.linspace(1e5, 2e5, 12),
                "loss": np.linspace(3.0, 3.1, 12),
            }
        )


def test_bootstrap_counts_are_drawn_per_chunk_with_the_same_stream():
    law = xent_core.scaling_model("chinchilla")
    from xent_fitters.datasets import chinchilla_data

    problem = law.problem(chinchilla_data())
    start = np.array([[6.17, 7.67, 0.597, 0.347, 0.367]])
    counts = bootstrap_counts(problem.n, 7, np.random.default_rng(4))
    given, _ = bootstrap_fit(problem, start, 7, counts=counts, chunk=3)
    drawn, _ = bootstrap_fit(problem, start, 7, seed=4, chunk=3)
    np.testing.assert_array_equal(given, drawn)
