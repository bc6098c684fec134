"""``xent bench linear-ce`` on tiny shapes: subprocess workers, reference check, table, outputs."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner
from xent_cce.bench.cli import bench_app
from xent_cce.bench.runner import BenchConfig, markdown, run_bench
from xent_cce.selection import parse_impl

import xent_core

TINY = ["--tokens", "48", "--vocab", "301", "--hidden", "16", "--repeats", "2", "--warmup", "0"]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """xent (test root)."""

    app.add_typer(bench_app, name="bench")
    return app


def test_plugin_registers_the_bench_command_group():
    names = [name for plugin, _obj, name in xent_core.get_registry().commands() if plugin == "cce"]
    assert "bench" in names


def test_cli_runs_side_by_side_and_writes_outputs(tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    impls = ["-i", "naive", "-i", "cce-torch", "-i", "cce-triton"]
    args = ["bench", "linear-ce", *TINY, "--device", "cpu", *impls]
    result = CliRunner().invoke(
        _app(), [*args, "--json", str(out_json), "--append-docs", str(out_md)]
    )
    assert result.exit_code == 0, result.output
    assert "linear-ce N=48 V=301 D=16" in result.output
    report = json.loads(out_json.read_text())
    rows = {r["impl"]: r for r in report["results"]}
    assert report["baseline"] == "naive" and report["reference"].startswith("naive")
    assert rows["naive"]["status"] == "ok" and rows["naive"]["time_ratio"] == 1.0
    ok = rows["cce-torch"]
    assert ok["status"] == "ok" and len(ok["times_s"]) == 2
    assert ok["max_rel_err"] < 1e-4  # checked against naive's loss and gradients
    assert ok["peak_mb"] >= 0 or abs(ok["peak_mb"]) < 5  # RSS granularity on tiny shapes
    if not xent_core.kernel("cce-triton").available()[0]:
        assert rows["cce-triton"]["status"] == "unavailable"
    md = out_md.read_text()
    assert md.startswith("\n### linear-ce: N=48, V=301, D=16, fp32, cpu")
    assert "| cce-torch | ok |" in md and "torch " in md


def test_float64_reference_when_naive_is_not_run():
    cfg = BenchConfig(tokens=40, vocab=257, hidden=12, impls=["cce-torch"], repeats=1, warmup=0)
    report = run_bench(cfg)
    assert report["reference"] == "cce-torch float64"
    (row,) = report["results"]
    assert row["status"] == "ok" and row["max_rel_err"] < 1e-5
    assert report["baseline"] == "cce-torch"
    assert "| cce-torch | ok |" in markdown(report)


def test_bad_dtype_is_a_parameter_error():
    result = CliRunner().invoke(_app(), ["bench", "linear-ce", "--dtype", "int8", *TINY])
    assert result.exit_code != 0
    assert isinstance(result.exception, xent_core.BadParameterError)


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--impl", "nope"], "unknown kernel"),
        (["--impl", "cce-torch(chunk_elements=0)"], "chunk_elements"),
        (["--device", "tpu"], "--device must be"),
        (["--timeout", "-1"], "--timeout"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, match):
    """Through the real ``xent`` entry point: exit 2, one stderr line, no worker started."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "xent_core.cli", "bench", "linear-ce", *TINY, *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], proc.stderr
    assert "failed" not in proc.stdout


def test_impl_spec_parser():
    assert parse_impl("torch-native") == ("torch-native", {})
    assert parse_impl(" torch-native(chunked=True, batch_chunk_size=256) ") == (
        "torch-native",
        {"chunked": True, "batch_chunk_size": 256},
    )
    for bad in ("cce-torch(", "cce-torch(x=y)", "cce-torch(1)"):
        with pytest.raises(xent_core.BadParameterError):
            parse_impl(bad)
