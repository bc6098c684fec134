"""The ``xent bench estimators`` suite: every registered estimator against its baseline.

NPEET is not installable here, so the peer of ``knn-entropy`` and ``ksg-mi`` is the formula
written the way NPEET computes it (scipy ``cKDTree``, one thread as NPEET leaves it, the KSG
range counts at ``eps - 1e-15``), independent of xent's code. Each variant runs in a fresh
process; the value is the compared output. Every other estimator's row (a peer library where
one is installed, else the plain formula) is in :mod:`.bench_rows`, at its own default size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from xent_core.benchmarking import BenchCase, unlisted_components

SIZE = {"rows": 20000, "cols": 2}


def _data(size: dict[str, int], seed: int, paired: bool) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    n, d = size["rows"], size["cols"]
    x = rng.standard_normal((n, d))
    y = 0.6 * x + 0.8 * rng.standard_normal((n, d)) if paired else None
    return x, y


def _knn_entropy_peer(x: Any, k: int = 3) -> float:
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n, d = x.shape
    dist = cKDTree(x).query(x, k=k + 1)[0][:, k]
    log_vd = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
    return float(digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(dist)))


def _ksg_peer(x: Any, y: Any, k: int = 3) -> float:
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    def scale(a: Any) -> Any:
        return (a - a.mean(0)) / a.std(0)

    x, y = scale(x), scale(y)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, k]
    nx = cKDTree(x).query_ball_point(x, eps - 1e-15, p=np.inf, return_length=True)
    ny = cKDTree(y).query_ball_point(y, eps - 1e-15, p=np.inf, return_length=True)
    n = len(x)
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx) + digamma(ny)))


def _case(
    component: str,
    peer: str,
    xent: Callable[[Any, Any], float],
    naive: Callable[[Any, Any], float],
    paired: bool,
) -> BenchCase:
    def make(variant: str, size: dict[str, int], dtype: str, seed: int):  # type: ignore[no-untyped-def]
        import torch

        x, y = _data(size, seed, paired)
        fn = xent if variant == "xent" else naive

        def step() -> Sequence[Any]:
            return (torch.tensor(fn(x, y), dtype=torch.float64),)

        return step, []

    return BenchCase(component, peer, make, dict(SIZE))


def _est(name: str) -> Callable[[Any, Any], float]:
    def call(x: Any, y: Any) -> float:
        import xent_core

        est = xent_core.estimator(name)
        return float(est(x) if y is None else est(x, y))

    return call


def _row_case(name: str, row: Any) -> BenchCase:
    def make(variant: str, size: dict[str, int], dtype: str, seed: int):  # type: ignore[no-untyped-def]
        import numpy as np
        import torch
        from threadpoolctl import threadpool_limits

        # numpy's BLAS / LAPACK on as many threads as torch (the worker sets those): the CPU
        # clock sums every thread, so a multi-threaded peer would look slower than it is
        threadpool_limits(torch.get_num_threads())
        args = row.data(size, np.random.default_rng(seed))
        if row.torch_in:
            args = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
        if variant == "xent":
            import xent_core

            extra: dict[str, Any] = {}
            if row.split is not None:
                args, extra = row.split(*args)
            est = xent_core.estimator(name, **row.params, **extra)

            def fn() -> float:
                return float(est(*args, **row.call))
        else:

            def fn() -> float:
                return float(row.base(*args))

        def step() -> Sequence[Any]:
            return (torch.tensor(fn(), dtype=torch.float64),)

        return step, []

    return BenchCase(name, row.peer, make, dict(row.size))


KNN = ("knn-entropy", "ksg-mi")
"""The cases of the n=20000, d=2 / d=1 sections (the others run at their own sizes)."""

NOT_BENCHMARKED: dict[str, str] = {}
"""Registered estimators that cannot have a row, with the reason."""


def bench_cases() -> dict[str, BenchCase]:
    """The suite: case name -> :class:`BenchCase`."""
    from .bench_rows import rows

    peer = "cKDTree formula (NPEET's method)"
    cases = {
        "knn-entropy": _case(
            "knn-entropy", peer, _est("knn-entropy"), lambda x, y: _knn_entropy_peer(x), False
        ),
        "ksg-mi": _case("ksg-mi", peer, _est("ksg-mi"), _ksg_peer, True),
    }
    cases.update({name: _row_case(name, row) for name, row in rows().items()})
    return cases


def unlisted() -> dict[str, str]:
    """Every registered estimator without a row here (any plugin), with the reason shown."""
    return unlisted_components("estimator", bench_cases(), NOT_BENCHMARKED)
