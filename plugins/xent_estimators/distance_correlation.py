"""distance-correlation: Szekely-Rizzo distance covariance and correlation (V and U statistics)."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish

STATISTICS = ("dcor", "dcov2", "u-dcov2", "u-dcor2")


def _distances(z: torch.Tensor, exponent: float) -> torch.Tensor:
    d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    return d if exponent == 1.0 else d.pow(exponent)


def double_centered(d: torch.Tensor) -> torch.Tensor:
    """``A_ij = a_ij - a_i. - a_.j + a_..`` (row, column and grand means)."""
    row = d.mean(dim=1, keepdim=True)
    col = d.mean(dim=0, keepdim=True)
    return d - row - col + d.mean()


def u_centered(d: torch.Tensor) -> torch.Tensor:
    """U-centring: sums over n-2 and (n-1)(n-2), zero diagonal (needs n > 3)."""
    n = d.shape[0]
    row = d.sum(dim=1, keepdim=True) / (n - 2)
    col = d.sum(dim=0, keepdim=True) / (n - 2)
    u = d - row - col + d.sum() / ((n - 1) * (n - 2))
    return u.fill_diagonal_(0.0)


class DistanceCorrelation:
    """distance-correlation: dCor (or dCov^2) between paired samples of two random vectors.

    With ``a_ij = ||x_i - x_j||^exponent`` double-centred to ``A`` (row, column, grand means
    removed), likewise ``B`` from ``y``:

        dCov^2_n(x, y) = (1/n^2) sum_ij A_ij B_ij,   dCor = sqrt(dCov^2 / sqrt(dVar^2_x dVar^2_y))

    (dCor = 0 when a variable is constant, Szekely-Rizzo's convention for 0/0). The unbiased
    U-statistic uses U-centring ``~A`` (sums over n-2 and (n-1)(n-2), zero diagonal) and
    ``(1/(n(n-3))) sum_{i!=j} ~A_ij ~B_ij``; ``u-dcor2`` is the bias-corrected squared dCor (it
    may be negative). 0 <= dCor <= 1, and dCor = 0 iff independence (population, exponent < 2).
    Agrees with ``dcor`` 0.7 (``distance_covariance_sqr``, ``distance_correlation``,
    ``u_distance_covariance_sqr``, ``u_distance_correlation_sqr``).

    Call ``est(x, y)`` with ``x`` (n,) or (n, p) and ``y`` (n,) or (n, q). ``details`` holds
    every statistic (``dcov2``, ``dvar2_x``, ``dvar2_y``, ``dcor``, and for n > 3 ``u-dcov2``,
    ``u-dcor2``). Cost: O(n^2 (p + q)) time and O(n^2) memory (two n x n float64 matrices) on
    the inputs' device; the O(n log n) one-dimensional algorithm is not implemented.

    Args:
        statistic: returned value: 'dcor', 'dcov2' (V-statistic), 'u-dcov2' (unbiased) or
            'u-dcor2' (bias-corrected squared dCor).
        exponent: power of the Euclidean distance, in (0, 2) (default 1).

    Citation: Szekely, Rizzo and Bakirov, "Measuring and testing dependence by correlation of
    distances" (arXiv:0803.4101); used as a fairness regulariser in "Multitype protected
    attributes" (see dcov-reg).
    """

    citation = (
        ("Measuring and testing dependence by correlation of distances", "arXiv:0803.4101"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(self, statistic: str = "dcor", exponent: float = 1.0) -> None:
        self.statistic = validate.choice("statistic", statistic, STATISTICS)
        self.exponent = validate.number(
            "exponent", exponent, low=0, high=2, low_open=True, high_open=True
        )
        self.units = "dimensionless" if "dcor" in self.statistic else "distance^2"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("distance-correlation needs two inputs: est(x, y)")
        a = as_matrix(x, "x", allow_vector=True)
        b = as_matrix(y, "y", allow_vector=True)
        if a.shape[0] != b.shape[0]:
            raise BadInputError(
                f"x has {a.shape[0]} rows and y has {b.shape[0]}: samples must be paired"
            )
        b = b.to(a.device)
        n = a.shape[0]
        if self.statistic.startswith("u-") and n < 4:
            raise BadInputError(f"the U-statistic needs at least 4 samples; got {n}")
        da, db = _distances(a, self.exponent), _distances(b, self.exponent)
        ca, cb = double_centered(da), double_centered(db)
        dcov2 = float((ca * cb).mean())
        vx, vy = float(ca.square().mean()), float(cb.square().mean())
        denom = math.sqrt(vx * vy)
        dcor = math.sqrt(max(dcov2, 0.0) / denom) if denom > 0 else 0.0
        info: dict[str, Any] = {"dcov2": dcov2, "dvar2_x": vx, "dvar2_y": vy, "dcor": dcor}
        if n > 3:
            del ca, cb
            ua, ub = u_centered(da), u_centered(db)
            scale = n * (n - 3)
            u_xy = float((ua * ub).sum()) / scale
            u_xx, u_yy = float(ua.square().sum()) / scale, float(ub.square().sum()) / scale
            u_den = math.sqrt(u_xx * u_yy) if u_xx * u_yy > 0 else 0.0
            info["u-dcov2"] = u_xy
            info["u-dcor2"] = u_xy / u_den if u_den > 0 else 0.0
        return finish(info[self.statistic], info, details)
