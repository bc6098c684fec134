"""``xent bench estimators``: every case agrees with its baseline, and every estimator has one.

Each case runs at a tiny size (a few hundred rows) in both variants: xent and its peer library
or plain formula (written independently of xent's code). The tolerance is the row's ``rtol``:
1e-9 or tighter where both sides are float64 closed forms (round-off only), looser where a
side works in float32 (token and attention entropies, torchmetrics' ECE: 1e-5), runs an
iterative search (temperature scaling: 1e-7, the NLL is flat at the optimum) or goes through
an eigen / SVD decomposition of a different matrix (1e-8 - 1e-6).
"""

from __future__ import annotations

import math

import pytest
from xent_estimators.bench import KNN, NOT_BENCHMARKED, bench_cases, unlisted
from xent_estimators.bench_rows import rows

import xent_core

CASES = bench_cases()
SLOW = {"distance-correlation"}  # dcor compiles its numba kernels on first use (about 10 s)


def _tiny(size: dict[str, int]) -> dict[str, int]:
    small = {"rows": 256, "cols": 48}
    return {k: min(v, small.get(k, v)) for k, v in size.items()}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(CASES)]
)
def test_case_agrees_with_its_baseline(name: str) -> None:
    case = CASES[name]
    size = _tiny(case.size)
    values = {}
    for variant in ("xent", "peer"):
        step, _ = case.make(variant, size, "fp64", 0)
        (value,) = step()
        values[variant] = float(value)
    rtol = 1e-10 if name in KNN else rows()[name].rtol
    assert math.isfinite(values["peer"])
    assert values["xent"] == pytest.approx(values["peer"], rel=rtol, abs=1e-12), values


def test_every_registered_estimator_has_a_row_or_a_reason() -> None:
    names = {s.name for s in xent_core.list_components("estimator")}
    assert {c.component for c in CASES.values()} <= names
    missing = unlisted()
    assert set(missing) <= set(NOT_BENCHMARKED), missing
    assert all(reason.strip() for reason in missing.values())


def test_rows_are_labelled_with_a_peer_or_as_naive() -> None:
    for name, case in CASES.items():
        assert case.peer, name
        assert case.size, name
