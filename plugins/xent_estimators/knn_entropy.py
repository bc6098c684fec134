"""Kozachenko-Leonenko k-nearest-neighbour estimator of differential entropy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xent_core import BadInputError

from ._common import (
    as_matrix,
    check_choice,
    check_positive_int,
    finish,
    log_base,
    no_second_input,
    pow2_scale,
    unit_name,
)


def log_unit_ball_volume(d: int, norm: str) -> float:
    """log volume of the unit ball of R^d: Euclidean ``pi^(d/2) / Gamma(d/2 + 1)``, max ``2^d``."""
    if norm == "max":
        return d * math.log(2.0)
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def kth_neighbour_distances(x: np.ndarray, k: int, p: float, workers: int = -1) -> np.ndarray:
    """Distance from every row to its k-th nearest other row (KD-tree; O(n k) memory).

    The rows are queried in the tree's leaf order (``tree.indices``), so consecutive queries
    walk the same nodes (cache-friendly); the result is put back in row order.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(x)
    order = tree.indices
    out = np.empty(len(x), dtype=np.float64)
    out[order] = tree.query(x[order], k=[k + 1], p=p, workers=workers)[0][:, 0]
    return out


class KnnEntropy:
    """Kozachenko-Leonenko kNN estimator of differential entropy (nats).

    For ``n`` samples in ``R^d`` (rows of ``x``) and ``eps_i`` the distance from sample ``i`` to its
    ``k``-th nearest neighbour,

        H = psi(n) - psi(k) + log V_d + (d / n) sum_i log eps_i,

    where ``psi`` is the digamma function and ``V_d`` the volume of the unit ball of the chosen
    norm (Euclidean: ``pi^(d/2) / Gamma(d/2 + 1)``; max norm: ``2^d``). Neighbours come from a
    KD-tree (``scipy.spatial.cKDTree``): ``O(n log n)`` time, ``O(n k)`` memory, never an
    ``n x n`` matrix. Units: nats by default (``base``).

    Args:
        k: neighbour order (default 3).
        norm: ``"euclidean"`` (default) or ``"max"``.
        base: logarithm base (default e).

    Caveats: consistent but biased at finite ``n``: the bias grows with the dimension (it
    overestimates the entropy of concentrated distributions and of data on a low-dimensional
    manifold, and is off near the boundary of bounded supports); in ``d >= 10`` it needs very
    large ``n``. Duplicate rows make ``eps_i = 0`` and are rejected (add tiny noise or use a
    discrete estimator). Differential entropy can be negative. Runs on the CPU (torch inputs are
    copied to the host).

    Citation: Kozachenko and Leonenko, "Sample estimate of the entropy of a random vector",
    Problems of Information Transmission 23 (1987); Kraskov, Stoegbauer, Grassberger, "Estimating
    mutual information", arXiv:cond-mat/0305641.
    """

    citation = (
        ("Sample estimate of the entropy of a random vector", "Probl. Inf. Transm. 23 (1987)"),
        ("Estimating mutual information", "arXiv:cond-mat/0305641"),
    )
    capabilities = {"devices": ("cpu",), "accumulate": "rows"}

    def __init__(self, k: int = 3, norm: str = "euclidean", base: float = math.e) -> None:
        self.k = check_positive_int(k, "k", 1)
        self.norm = check_choice(norm, "norm", ("euclidean", "max"))
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        from scipy.special import digamma

        no_second_input(y, "knn-entropy")
        m = as_matrix(x, "x", min_rows=self.k + 1, allow_vector=True, backend="numpy")
        n, d = m.shape
        # distances in units of s (a power of two near max|x|: exact), so data of magnitude
        # 1e200 does not overflow; log s is added back below
        s = pow2_scale(m)
        eps = kth_neighbour_distances(m / s, self.k, math.inf if self.norm == "max" else 2.0)
        zeros = int((eps == 0).sum())
        if zeros:
            raise BadInputError(
                f"{zeros} sample(s) have {self.k} or more exact duplicates (zero neighbour "
                "distance); the kNN entropy is -inf there. Add tiny noise or use a discrete "
                "estimator (plugin-entropy)"
            )
        mean_log_distance = float(np.mean(np.log(eps))) + math.log(s)
        h = (
            digamma(n)
            - digamma(self.k)
            + log_unit_ball_volume(d, self.norm)
            + d * mean_log_distance
        )
        info = {"n": n, "d": d, "k": self.k, "mean_log_distance": mean_log_distance}
        return finish(h / self._log_base, {**info, "units": self.units}, details)
