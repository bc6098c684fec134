"""Kraskov-Stoegbauer-Grassberger (KSG, estimator 1) mutual information."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xent_core import BadInputError

from ._common import as_matrix, check_flag, check_positive_int, finish, log_base, unit_name
from .knn_entropy import kth_neighbour_distances


def _standardize(a: np.ndarray) -> np.ndarray:
    std = a.std(axis=0)
    std[std == 0] = 1.0
    return (a - a.mean(axis=0)) / std


def _range_counts(part: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Number of rows within ``radius[i]`` of row i (max norm, the row itself included).

    One-dimensional data: two binary searches per point in the sorted values (``O(n log n)``,
    vectorised); otherwise a KD-tree range count on every core, with leaves of 32 points and the
    rows queried in the tree's leaf order (about 20 % faster here than leaves of 16 in row
    order: consecutive queries walk the same nodes).
    """
    from scipy.spatial import cKDTree

    if part.shape[1] == 1:
        values = part[:, 0]
        ordered = np.sort(values)
        n = len(ordered)
        # first guesses, then exact fix-ups: the test is |x_j - x_i| <= r on the rounded
        # difference, as the tree computes it (x_i + r may round onto a neighbour at distance
        # exactly eps, which KSG must exclude); fl(o - v) is monotone in o, so each bound
        # moves by a few places at most
        upper = np.searchsorted(ordered, values + radius, side="right")
        lower = np.searchsorted(ordered, values - radius, side="left")
        for _ in range(n):
            grow = upper < n
            grow[grow] = ordered[upper[grow]] - values[grow] <= radius[grow]
            shrink = upper > 0
            shrink[shrink] = ordered[upper[shrink] - 1] - values[shrink] > radius[shrink]
            if not (grow.any() or shrink.any()):
                break
            upper = upper + grow - shrink
        for _ in range(n):
            grow = lower > 0
            grow[grow] = values[grow] - ordered[lower[grow] - 1] <= radius[grow]
            shrink = lower < n
            shrink[shrink] = values[shrink] - ordered[lower[shrink]] > radius[shrink]
            if not (grow.any() or shrink.any()):
                break
            lower = lower - grow + shrink
        return (upper - lower).astype(np.float64)
    tree = cKDTree(part, leafsize=32)
    order = tree.indices
    counts = np.empty(len(part), dtype=np.float64)
    counts[order] = tree.query_ball_point(
        part[order], r=radius[order], p=math.inf, return_length=True, workers=-1
    )
    return counts


class KsgMutualInformation:
    """KSG estimator 1 of the mutual information I(X; Y) between two continuous variables (nats).

    Rows of ``x`` (n, dx) and ``y`` (n, dy) are paired samples. With ``eps_i`` the max-norm
    distance from ``(x_i, y_i)`` to its ``k``-th neighbour in the joint space, and ``n_x(i)``,
    ``n_y(i)`` the numbers of other points strictly closer than ``eps_i`` in each marginal space
    (max norm),

        I(X; Y) = psi(k) + psi(n) - < psi(n_x + 1) + psi(n_y + 1) >.

    KD-trees (``scipy.spatial.cKDTree``) do the neighbour search and the range counts (binary
    searches in the sorted values for one-dimensional ``x`` or ``y``): ``O(n log n)`` time,
    ``O(n)`` memory. Units: nats by default (``base``).

    Args:
        k: neighbour order (default 3).
        standardize: scale every column of ``x`` and ``y`` to zero mean, unit variance first
            (default True; the max norm mixes the axes, so the estimate depends on their scales).
        base: logarithm base (default e).

    Caveats: nearly unbiased for independent variables (values can be slightly negative; they
    are not clipped), but it underestimates large MI (strongly dependent variables, e.g.
    ``rho = 0.99``) and its bias grows with the dimension. Duplicate rows are rejected. Runs on the
    CPU.

    Citation: Kraskov, Stoegbauer, Grassberger, "Estimating mutual information",
    arXiv:cond-mat/0305641 (Phys. Rev. E 69, 066138, 2004).
    """

    citation = ("Estimating mutual information", "arXiv:cond-mat/0305641")
    capabilities = {"devices": ("cpu",), "accumulate": "rows"}

    def __init__(self, k: int = 3, standardize: bool = True, base: float = math.e) -> None:
        self.k = check_positive_int(k, "k", 1)
        self.standardize = check_flag(standardize, "standardize")
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        from scipy.special import digamma

        if y is None:
            raise BadInputError("ksg-mi needs two inputs: x (n, dx) and y (n, dy)")
        a = as_matrix(x, "x", min_rows=self.k + 1, allow_vector=True, backend="numpy")
        b = as_matrix(y, "y", min_rows=self.k + 1, allow_vector=True, backend="numpy")
        if a.shape[0] != b.shape[0]:
            raise BadInputError(
                f"x and y must have the same number of rows (paired samples); got {a.shape[0]} "
                f"and {b.shape[0]}"
            )
        if self.standardize:
            a, b = _standardize(a), _standardize(b)
        n = a.shape[0]
        eps = kth_neighbour_distances(np.hstack([a, b]), self.k, math.inf)
        if bool((eps == 0).any()):
            raise BadInputError(
                f"{int((eps == 0).sum())} sample(s) have {self.k} or more exact duplicates in "
                "the joint space; add tiny noise to continuous data with repeated values"
            )
        radius = np.nextafter(eps, 0.0)  # strictly closer than eps
        counts = [_range_counts(part, radius) for part in (a, b)]  # include the point itself
        cx, cy = counts
        mi = digamma(self.k) + digamma(n) - float(np.mean(digamma(cx) + digamma(cy)))
        info = {
            "n": n,
            "k": self.k,
            "mean_nx": float(cx.mean() - 1),
            "mean_ny": float(cy.mean() - 1),
            "units": self.units,
        }
        return finish(mi / self._log_base, info, details)
