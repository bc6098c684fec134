"""erank: effective rank from the eigenvalues of the covariance (exp of the matrix entropy)."""

from __future__ import annotations

import math
from typing import Any

from ._common import (
    as_matrix,
    check_flag,
    covariance_eigenvalues,
    finish,
    no_second_input,
    normalized_spectrum,
    preprocess_rows,
    shannon,
    to_host,
)


class EffectiveRank:
    """erank: covariance-eigenvalue effective rank, exp of the matrix entropy (dimensionless).

    Rows of ``x`` (n, d) are centred and scaled to unit norm (both optional), ``Sigma`` is their
    covariance ``X^T X / n`` divided by its trace, ``l_i`` its eigenvalues, and

        erank = exp(-sum_i l_i log l_i) = exp(matrix-entropy in nats).

    ``r`` equal covariance eigenvalues give ``r``; ``1 <= erank <= min(n, d)``.

    Args:
        center: remove column means first (default True).
        normalize_rows: scale every row to unit L2 norm (default True, as in Diff-eRank); with
            ``center=False, normalize_rows=False`` this is the Roy-Vetterli effective rank of the
            squared singular values of ``x``.

    Not the same as ``rankme``, which uses singular values (not their squares) of the raw
    embeddings.

    Citations: Roy and Vetterli, "The effective rank: A measure of effective dimensionality",
    EUSIPCO 2007; Wei et al., "Diff-eRank: A Novel Rank-Based Metric for Evaluating Large Language
    Models", arXiv:2401.17139.
    """

    citation = (
        ("The effective rank: A measure of effective dimensionality", "EUSIPCO 2007"),
        (
            "Diff-eRank: A Novel Rank-Based Metric for Evaluating Large Language Models",
            "arXiv:2401.17139",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "gram"}

    def __init__(self, center: bool = True, normalize_rows: bool = True) -> None:
        self.center = check_flag(center, "center")
        self.normalize_rows = check_flag(normalize_rows, "normalize_rows")
        self.units = "effective dimensions"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "erank")
        z = as_matrix(x, "x", min_rows=2 if self.center else 1)
        z = preprocess_rows(z, center=self.center, normalize_rows=self.normalize_rows)
        lam = normalized_spectrum(covariance_eigenvalues(z))
        h = float(shannon(lam))
        return finish(math.exp(h), {"eigenvalues": to_host(lam), "entropy": h}, details)
