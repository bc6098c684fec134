"""``xent bench losses``: every loss has a row or a stated reason, and a tiny run works end to
end (fresh worker processes, ratios, the comparison of outputs)."""

from __future__ import annotations

import pytest
from xent_losses.bench import NOT_BENCHMARKED, bench_cases, unlisted

import xent_core
from xent_core.benchmarking import markdown, run_suite, table_rows


def test_every_registered_loss_has_a_row_or_is_listed_without_one() -> None:
    covered = {c.component for c in bench_cases().values()}
    missing = unlisted()
    names = {s.name for s in xent_core.list_components("loss")}
    assert names == covered | set(missing)
    assert not covered & set(missing)
    for name, why in NOT_BENCHMARKED.items():
        assert missing.get(name, why) == why


def test_a_tiny_run_reports_ratios_and_agreement() -> None:
    rows = run_suite(
        "xent_losses.bench",
        ["cross-entropy(label_smoothing)"],
        size={"rows": 9, "cols": 13},
        min_time=0.01,
        compiled=False,
    )
    (row,) = rows
    assert "error" not in row["xent"] and "error" not in row["peer"], row
    assert row["time_ratio"] > 0 and row["xent"]["peak_mb"] >= 0
    assert row["max_rel_diff"] < 1e-5  # the same loss and gradient as F.cross_entropy
    env = {"date": "d", "cpu": "c", "cores": 2, "threads": 1, "load_1min": 0.5}
    text = markdown("t", rows, {**env, "python": "3", "torch": "2"})
    assert "| cross-entropy(label_smoothing) | F.cross_entropy |" in text
    assert len(table_rows(rows)[0]) == 10


def test_interleaved_rounds_report_a_spread_and_the_checks_cost() -> None:
    from xent_core._bench_checks import checks_markdown, run_checks_cost

    size = {"rows": 7, "cols": 11}
    (row,) = run_suite(
        "xent_losses.bench",
        ["cross-entropy"],
        size=size,
        min_time=0.02,
        repeats=3,
        compiled=False,
    )
    lo, hi = row["time_ratio_range"]
    assert 0 < lo <= row["time_ratio"] <= hi
    assert row["xent"]["runs"] == row["peer"]["runs"] == 3
    (cost,) = run_checks_cost(
        "xent_losses.bench", ["cross-entropy"], size=size, min_time=0.02, repeats=3
    )
    assert "error" not in cost, cost
    assert cost["rounds"] == 3 and cost["pass_s"] > 0 and cost["on_s"] > 0 and cost["off_s"] > 0
    assert checks_markdown([cost])[2].startswith("| cross-entropy | ")


def test_the_peer_table_script_replaces_only_the_marked_part(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "peer_table.py"
    spec = importlib.util.spec_from_file_location("peer_table", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = tmp_path / "b.md"
    doc.write_text(f"before\n{mod.START}\nold\n{mod.END}\nafter\n")
    mod.write(doc, "| new |\n", 90.0)
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "old" not in text and "| new |" in text and "1.5 min" in text


# ------------------------------------------------- every case, both variants, at a tiny size
#: max relative difference (loss and every gradient) between xent and its baseline at 8 x 16
#: fp32. Default 1e-5: both sides round a few float32 reductions over at most 16 terms
#: (measured: at most 3.2e-6). Wider where the baseline is known to lose digits:
TOLERANCE = {
    # the plain (1 - p)^n rounds 1 - p in float32: its loss and gradient lose digits as
    # p -> 0 (measured 1.9e-4 here, 0.16 at 512 x 8192); xent works with log(1 - p)
    "pass-at-n": 1e-3,
    # xent's kernels take ||a - b||^2 as |a|^2 + |b|^2 - 2 a.b (one matmul), which cancels in
    # float32 (measured 2.9e-5 from float64, the plain broadcast difference 2.3e-6; 2e-14
    # apart in float64)
    "cs-ib": 1e-4,
}


def _outputs(case, variant: str) -> list:
    step, grad_like = case.make(variant, {"rows": 8, "cols": 16}, "fp32", 3)
    assert all(g.dtype.is_floating_point for g in grad_like)
    return [t.detach().double().clone() for t in step()]


@pytest.mark.parametrize("name", sorted(bench_cases()))
def test_every_case_agrees_with_its_baseline_at_a_tiny_size(name: str) -> None:
    from xent_core._bench_pair import max_rel_diff

    case = bench_cases()[name]
    with xent_core.input_checks(False):
        xent, peer = _outputs(case, "xent"), _outputs(case, "peer")
    assert len(xent) == len(peer) >= 2  # the loss and at least one gradient
    assert all(bool(t.isfinite().all()) for t in xent + peer)
    assert max_rel_diff(xent, peer) < TOLERANCE.get(name, 1e-5)


def test_only_reasoned_losses_are_left_without_a_row() -> None:
    missing = unlisted()
    assert set(missing) <= set(NOT_BENCHMARKED), missing
    assert not set(NOT_BENCHMARKED) & {c.component for c in bench_cases().values()}
