"""``xent estimate``: through a small Typer app in-process, and the real ``xent`` in a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner
from xent_estimators.cli import estimate, parse_value

from xent_core import BadInputError, BadParameterError, UnknownComponentError


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("estimate")(estimate)

    @a.command("noop")
    def _noop() -> None:  # a second command keeps "estimate" a sub-command
        pass

    return a


def run(app, *args):
    return CliRunner().invoke(app, ["estimate", *map(str, args)])


def test_single_estimator_on_npy(app, tmp_path):
    x = np.random.default_rng(0).normal(size=(500, 2))
    np.save(tmp_path / "x.npy", x)
    res = run(app, tmp_path / "x.npy", "--estimator", "gaussian-entropy")
    assert res.exit_code == 0, res.output
    expected = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * np.cov(x, rowvar=False)))
    name, _, rest = res.output.strip().partition(" = ")
    assert name == "gaussian-entropy"
    assert float(rest.split()[0]) == pytest.approx(expected, rel=1e-5)
    assert rest.split()[1] == "nats"


def test_several_estimators_table_and_params(app, tmp_path):
    x = np.random.default_rng(1).normal(size=(150, 4))
    np.save(tmp_path / "x.npy", x)
    res = run(
        app, tmp_path / "x.npy", "-e", "dse", "-e", "vendi", "-e", "knn-entropy",
        "--param", "base=2", "--param", "dse.sigma=1.5", "--param", "vendi.q=inf",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("dse", "vendi", "knn-entropy", "bits", "effective samples"):
        assert name in res.output
    js = run(
        app, tmp_path / "x.npy", "-e", "dse", "-e", "vendi", "--param", "dse.sigma=1.5",
        "--param", "vendi.q=inf", "--json",
    )  # fmt: skip
    assert js.exit_code == 0, js.output
    out = {r["estimator"]: r for r in json.loads(js.output)["results"]}
    import xent_core

    assert out["dse"]["value"] == pytest.approx(xent_core.estimator("dse", sigma=1.5)(x))
    assert out["vendi"]["value"] == pytest.approx(xent_core.estimator("vendi", q=math.inf)(x))
    assert out["vendi"]["params"] == {"q": "inf"}  # strict JSON has no Infinity token
    assert out["dse"]["details"]["n"] == 150


def test_labels_file_csv_and_npz_inputs(app, tmp_path):
    rng = np.random.default_rng(2)
    z = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=400)
    np.savetxt(tmp_path / "x.csv", z[:, :1], delimiter=",", header="feature", comments="")
    np.savetxt(tmp_path / "y.txt", z[:, 1])
    res = run(app, tmp_path / "x.csv", "-e", "ksg-mi", "--labels", tmp_path / "y.txt", "--json")
    assert res.exit_code == 0, res.output
    import xent_core

    got = json.loads(res.output)["results"][0]["value"]
    assert got == pytest.approx(xent_core.estimator("ksg-mi")(z[:, 0], z[:, 1]), rel=1e-9)
    np.savez(tmp_path / "xy.npz", x=z[:, 0], y=z[:, 1])
    res = run(app, tmp_path / "xy.npz", "-e", "ksg-mi", "--json")
    assert json.loads(res.output)["results"][0]["value"] == pytest.approx(got, rel=1e-12)
    # several unnamed arrays need --key
    np.savez(tmp_path / "two.npz", a=z, b=z)
    res = run(app, tmp_path / "two.npz", "-e", "gaussian-entropy")
    assert isinstance(res.exception, BadInputError) and "--key" in str(res.exception)
    res = run(app, tmp_path / "two.npz", "-e", "gaussian-entropy", "--key", "b")
    assert res.exit_code == 0, res.output


def test_token_entropy_from_npz_and_policy_covariance_from_pt(app, tmp_path):
    logits = np.random.default_rng(3).normal(size=(20, 31))
    np.savez(tmp_path / "logits.npz", logits=logits)
    res = run(app, tmp_path / "logits.npz", "-e", "token-entropy", "--json")
    assert res.exit_code == 0, res.output
    ref = torch.distributions.Categorical(logits=torch.from_numpy(logits)).entropy().mean()
    assert json.loads(res.output)["results"][0]["value"] == pytest.approx(float(ref), rel=1e-6)
    g = torch.Generator().manual_seed(4)
    data = {
        "logprobs": -torch.rand(4, 9, generator=g),
        "advantages": torch.randn(4, 9, generator=g),
    }
    torch.save(data, tmp_path / "rl.pt")
    res = run(app, tmp_path / "rl.pt", "-e", "policy-entropy-covariance", "--json")
    assert res.exit_code == 0, res.output
    lp, adv = data["logprobs"].double().flatten(), data["advantages"].double().flatten()
    ref = float(((lp - lp.mean()) * (adv - adv.mean())).mean())
    assert json.loads(res.output)["results"][0]["value"] == pytest.approx(ref, rel=1e-5)


def test_discrete_labels_from_csv_strings(app, tmp_path):
    (tmp_path / "s.csv").write_text("word\na\nb\na\nc\na\nb\n")
    res = run(app, tmp_path / "s.csv", "-e", "plugin-entropy", "--json")
    assert res.exit_code == 0, res.output
    p = np.array([3, 2, 1]) / 6
    assert json.loads(res.output)["results"][0]["value"] == pytest.approx(-(p * np.log(p)).sum())


def test_bad_files_and_usage_raise_xent_errors(app, tmp_path):
    res = run(app, tmp_path / "missing.npy", "-e", "dse")
    assert isinstance(res.exception, BadInputError) and "no such file" in str(res.exception)
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    res = run(app, tmp_path / "x.bin", "-e", "dse")
    assert isinstance(res.exception, BadInputError) and "unsupported" in str(res.exception)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    res = run(app, tmp_path / "bad.npy", "-e", "dse")
    assert isinstance(res.exception, BadInputError) and "cannot read" in str(res.exception)
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    res = run(app, tmp_path / "ragged.csv", "-e", "dse")
    assert isinstance(res.exception, BadInputError) and "line 2" in str(res.exception)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    res = run(app, tmp_path / "cube.npy", "-e", "dse")
    assert isinstance(res.exception, BadInputError) and "shape" in str(res.exception)
    np.save(tmp_path / "ok.npy", np.ones((5, 2)))
    res = run(app, tmp_path / "ok.npy", "-e", "dse", "--param", "bogus=1")
    assert isinstance(res.exception, BadParameterError) and "sigma" in str(res.exception)
    res = run(app, tmp_path / "ok.npy", "-e", "dse", "-e", "vendi", "--param", "bogus=1")
    assert isinstance(res.exception, BadParameterError)
    res = run(app, tmp_path / "ok.npy", "-e", "dse", "--param", "novalue")
    assert isinstance(res.exception, BadParameterError)
    res = run(app, tmp_path / "ok.npy", "-e", "no-such-estimator")
    assert isinstance(res.exception, UnknownComponentError)


def test_parse_value():
    assert parse_value("2") == 2 and parse_value("0.5") == 0.5
    assert parse_value("inf") == math.inf and parse_value("True") is True
    assert parse_value("none") is None and parse_value("embeddings") == "embeddings"
    assert parse_value("(1, 2)") == (1, 2)


def test_through_the_xent_cli_main(tmp_path, capsys):
    from xent_core.cli import main

    x = np.random.default_rng(5).normal(size=(50, 3))
    np.save(tmp_path / "x.npy", x)
    code = main(["estimate", str(tmp_path / "x.npy"), "-e", "erank", "-e", "rankme", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    values = {r["estimator"]: r["value"] for r in json.loads(out)["results"]}
    import xent_core

    assert values["erank"] == pytest.approx(xent_core.estimator("erank")(x), rel=1e-9)
    assert values["rankme"] == pytest.approx(xent_core.estimator("rankme")(x), rel=1e-9)


def test_real_cli_bad_file_is_one_line_and_exit_2(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "xent_core.cli", "estimate", str(tmp_path / "nope.npz"), "-e", "dse"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file" in lines[0], bad.stderr
