"""alpha-ReQ: power-law decay coefficient of the covariance eigenspectrum."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError

from ._common import (
    as_matrix,
    check_choice,
    check_flag,
    check_positive_int,
    covariance_eigenvalues,
    finish,
    no_second_input,
    pow2_scale,
    preprocess_rows,
    to_host,
)


def weighted_loglog_fit(
    eigenvalues: torch.Tensor, ranks: torch.Tensor, weights: torch.Tensor
) -> tuple[float, float, float]:
    """Weighted least squares of ``log l = c - alpha log r``; returns ``(alpha, c, R^2)``."""
    u = ranks.log()
    v = eigenvalues.log()
    w = weights / weights.sum()
    u_bar, v_bar = (w * u).sum(), (w * v).sum()
    du, dv = u - u_bar, v - v_bar
    suu = (w * du * du).sum()
    slope = (w * du * dv).sum() / suu
    intercept = v_bar - slope * u_bar
    resid = v - (intercept + slope * u)
    svv = (w * dv * dv).sum()
    r2 = 1.0 - float((w * resid * resid).sum() / svv) if float(svv) > 0 else 1.0
    return -float(slope), float(intercept), r2


class AlphaReQ:
    """alpha-ReQ: power-law decay coefficient alpha of the covariance eigenspectrum (l_i ~ i^-alpha).

    The eigenvalues ``l_1 >= l_2 >= ...`` of the covariance of ``x`` (n, d; rows are samples,
    centred by default) are fitted on ranks ``min_rank..max_rank`` by weighted least squares

        log l_i = c - alpha log i,    minimising sum_i w_i (log l_i - c + alpha log i)^2,

    with ``w_i = 1/i`` (``weighting="log-rank"``, default: every unit of log-rank counts equally,
    instead of the many high ranks dominating) or ``w_i = 1`` (``"uniform"``). ``details`` gives
    the intercept, the weighted ``R^2`` of the fit, the fitted ranks and the spectrum.
    Dimensionless. Only strictly positive eigenvalues (above ``1e-12`` of the largest) are used.

    Args:
        min_rank: first rank of the fit, 1-based (default 1).
        max_rank: last rank (inclusive); default None = every positive eigenvalue.
        weighting: ``"log-rank"`` (default) or ``"uniform"``.
        center: remove column means first (default True).
        normalize_rows: scale rows to unit norm first (default False).

    Caveats: alpha depends on the fit range (the tail is noisy when ``n`` is not much larger than
    ``d``); report the range with the value, and check ``R^2``.

    Citation: Agrawal, Mondal, Ghosh, Richards, "alpha-ReQ: Assessing Representation Quality in
    Self-Supervised Learning by measuring eigenspectrum decay", NeurIPS 2022.
    """

    citation = (
        "alpha-ReQ: Assessing Representation Quality in Self-Supervised Learning by measuring "
        "eigenspectrum decay",
        "NeurIPS 2022",
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "gram"}

    def __init__(
        self,
        min_rank: int = 1,
        max_rank: int | None = None,
        weighting: str = "log-rank",
        center: bool = True,
        normalize_rows: bool = False,
    ) -> None:
        self.min_rank = check_positive_int(min_rank, "min_rank", 1)
        self.max_rank = None if max_rank is None else check_positive_int(max_rank, "max_rank", 2)
        if self.max_rank is not None and self.max_rank <= self.min_rank:
            raise BadParameterError(
                f"max_rank ({self.max_rank}) must exceed min_rank ({self.min_rank})"
            )
        self.weighting = check_choice(weighting, "weighting", ("log-rank", "uniform"))
        self.center = check_flag(center, "center")
        self.normalize_rows = check_flag(normalize_rows, "normalize_rows")
        self.units = "dimensionless"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "alpha-req")
        z = as_matrix(x, "x", min_rows=3)
        z = preprocess_rows(z, center=self.center, normalize_rows=self.normalize_rows)
        # alpha is scale-invariant: fit the spectrum of z / s (s a power of two, exact), so data
        # of magnitude 1e200 does not overflow; the intercept is shifted back by 2 log s. Where
        # z's squares cannot overflow, dividing the spectrum of z by s^2 instead is the same
        # (exact) and saves a pass over z.
        s = pow2_scale(z)
        if 2.0**-400 <= s <= 2.0**400:
            ev = covariance_eigenvalues(z) / (s * s)
        else:
            ev = covariance_eigenvalues(z / s)
        if not bool(ev[0] > 0):
            raise BadInputError("x has zero variance: no spectrum to fit")
        positive = int((ev > ev[0] * 1e-12).sum())
        hi = positive if self.max_rank is None else min(self.max_rank, positive)
        lo = self.min_rank
        if hi - lo + 1 < 2:
            raise BadInputError(
                f"need at least 2 positive eigenvalues in ranks {lo}..{self.max_rank or 'end'}; "
                f"the spectrum has {positive} positive eigenvalue(s)"
            )
        ranks = torch.arange(lo, hi + 1, dtype=ev.dtype, device=ev.device)
        lam = ev[lo - 1 : hi]
        w = 1.0 / ranks if self.weighting == "log-rank" else torch.ones_like(ranks)
        alpha, intercept, r2 = weighted_loglog_fit(lam, ranks, w)
        intercept += 2.0 * math.log(s)
        info = {
            "r2": r2,
            "intercept": intercept,
            "fit_ranks": (lo, hi),
            "eigenvalues": to_host(ev) * (s * s),  # inf where the true value exceeds float64
            "scale": math.exp(intercept) if intercept < 709.0 else math.inf,
        }
        return finish(alpha, info, details)
