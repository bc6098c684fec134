"""distance-correlation: Szekely-Rizzo distance covariance and correlation (V and U statistics)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish

STATISTICS = ("dcor", "dcov2", "u-dcov2", "u-dcor2", "jdcov2")


def distances(z: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """``||z_i - z_j||^exponent`` (n, n), differentiable (zero gradient at zero distances)."""
    d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    if exponent == 1.0:
        return d
    positive = d > 0
    return torch.where(positive, torch.where(positive, d, torch.ones_like(d)).pow(exponent), 0.0)


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
    off = ~torch.eye(n, dtype=torch.bool, device=d.device)
    return torch.where(off, u, torch.zeros_like(u))  # not in place: differentiable


def dcov_terms(
    x: torch.Tensor, y: torch.Tensor, *, exponent: float = 1.0, unbiased: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dCov^2(x, y), dVar^2(x), dVar^2(y))`` as differentiable 0-d tensors; rows are samples.

    V-statistics (double centring, ``/ n^2``), or with ``unbiased`` the U-statistics
    (U-centring, ``/ (n (n - 3))``, n > 3). The estimator ``distance-correlation`` and the loss
    ``dcov-reg`` both compute with this.
    """
    da, db = distances(x, exponent), distances(y, exponent)
    if unbiased:
        n = x.shape[0]
        ua, ub = u_centered(da), u_centered(db)
        scale = n * (n - 3)
        return (ua * ub).sum() / scale, ua.square().sum() / scale, ub.square().sum() / scale
    ca, cb = double_centered(da), double_centered(db)
    return (ca * cb).mean(), ca.square().mean(), cb.square().mean()


def jdcov2(variables: list[torch.Tensor], *, c: float = 1.0, exponent: float = 1.0) -> torch.Tensor:
    """Chakraborty-Zhang joint distance covariance (V-statistic) of d >= 2 variables.

    With ``U^k = -A^k`` (minus the double-centred distance matrix of variable k),

        JdCov^2_n(X_1, ..., X_d; c) = (1/n^2) sum_ij prod_k (U^k_ij + c) - c^d,

    which expands into ``c^(d-2) sum_pairs dCov^2`` plus ``c^(d-3)`` times the third-order
    terms, and so on (each centred matrix sums to 0, so first-order terms vanish). For d = 2
    it is dCov^2. Differentiable; O(d n^2) memory.
    """
    prod: torch.Tensor | None = None
    for v in variables:
        term = c - double_centered(distances(v, exponent))
        prod = term if prod is None else prod * term
    assert prod is not None
    return prod.mean() - c ** len(variables)


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

    ``statistic='jdcov2'``: Chakraborty and Zhang's joint distance covariance of d >= 2
    variables, ``x`` and the parts of ``y`` (a list or tuple of numpy arrays or tensors: one
    variable each; an (n, q) array or nested list: one variable per column). With ``U^k = -A^k`` (minus the double-centred
    distance matrix of variable k), ``JdCov^2_n = (1/n^2) sum_ij prod_k (U^k_ij + c) - c^d``:
    ``c^(d-2)`` times the sum of the pairwise dCov^2 plus the higher-order (Lancaster) terms;
    0 in population iff the d variables are mutually independent, and dCov^2 for d = 2.
    ``details`` then holds ``jdcov2``, the pairwise ``dcov2`` sum and ``d``. Cost O(d n^2).

    Args:
        statistic: returned value: 'dcor', 'dcov2' (V-statistic), 'u-dcov2' (unbiased),
            'u-dcor2' (bias-corrected squared dCor) or 'jdcov2' (joint dCov of x and y's parts).
        exponent: power of the Euclidean distance, in (0, 2) (default 1).
        c: the constant of JdCov, > 0 (weight 1/c per extra order of interaction; default 1).

    Citation: Szekely, Rizzo and Bakirov, "Measuring and testing dependence by correlation of
    distances" (arXiv:0803.4101); used as a fairness regulariser in "Multitype protected
    attributes" (see dcov-reg).
    """

    citation = (
        ("Measuring and testing dependence by correlation of distances", "arXiv:0803.4101"),
        ("Distance Metrics for Measuring Joint Dependence with Application to Causal Inference", "arXiv:1711.09179"),
    )  # fmt: skip
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(self, statistic: str = "dcor", exponent: float = 1.0, c: float = 1.0) -> None:
        self.statistic = validate.choice("statistic", statistic, STATISTICS)
        self.exponent = validate.number(
            "exponent", exponent, low=0, high=2, low_open=True, high_open=True
        )
        self.c = validate.positive("c", c)
        self.units = "dimensionless" if "dcor" in self.statistic else "distance^2"

    def _joint(self, a: torch.Tensor, y: Any, details: bool) -> Any:
        arrays = (np.ndarray, torch.Tensor)
        if isinstance(y, (list, tuple)) and y and all(isinstance(p, arrays) for p in y):
            parts = [as_matrix(p, f"y[{i}]", allow_vector=True) for i, p in enumerate(y)]
        else:
            b = as_matrix(y, "y", allow_vector=True)
            parts = [b[:, j : j + 1] for j in range(b.shape[1])]
        variables = [a, *(p.to(a.device) for p in parts)]
        if any(v.shape[0] != a.shape[0] for v in variables):
            raise BadInputError("every variable must have the same number of rows as x (paired)")
        value = float(jdcov2(variables, c=self.c, exponent=self.exponent))
        pairwise = sum(
            float(dcov_terms(u, v, exponent=self.exponent)[0])
            for i, u in enumerate(variables)
            for v in variables[i + 1 :]
        )
        info = {"jdcov2": value, "pairwise_dcov2": pairwise, "d": len(variables), "c": self.c}
        return finish(value, info, details)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("distance-correlation needs two inputs: est(x, y)")
        if self.statistic == "jdcov2":
            return self._joint(as_matrix(x, "x", allow_vector=True), y, details)
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
        da, db = distances(a, self.exponent), distances(b, self.exponent)
        info: dict[str, Any] = {}
        if details or not self.statistic.startswith("u-"):  # V-statistics
            ca, cb = double_centered(da), double_centered(db)
            dcov2 = float((ca * cb).mean())
            vx, vy = float(ca.square().mean()), float(cb.square().mean())
            del ca, cb
            denom = math.sqrt(vx * vy)
            dcor = math.sqrt(max(dcov2, 0.0) / denom) if denom > 0 else 0.0
            info.update({"dcov2": dcov2, "dvar2_x": vx, "dvar2_y": vy, "dcor": dcor})
        if n > 3 and (details or self.statistic.startswith("u-")):  # U-statistics
            ua, ub = u_centered(da), u_centered(db)
            scale = n * (n - 3)
            u_xy = float((ua * ub).sum()) / scale
            u_xx, u_yy = float(ua.square().sum()) / scale, float(ub.square().sum()) / scale
            u_den = math.sqrt(u_xx * u_yy) if u_xx * u_yy > 0 else 0.0
            info["u-dcov2"] = u_xy
            info["u-dcor2"] = u_xy / u_den if u_den > 0 else 0.0
        return finish(info[self.statistic], info, details)
