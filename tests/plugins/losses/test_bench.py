"""``xent bench losses``: every loss has a row or a stated reason, and a tiny run works end to
end (fresh worker processes, ratios, the comparison of outputs)."""

from __future__ import annotations

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
