"""Matrix entropy: von Neumann entropy of the trace-normalised covariance of representations."""

from __future__ import annotations

import math
from typing import Any

from ._common import (
    as_matrix,
    check_flag,
    covariance_eigenvalues,
    finish,
    log_base,
    no_second_input,
    normalized_spectrum,
    preprocess_rows,
    shannon,
    to_host,
    unit_name,
)


class MatrixEntropy:
    """Matrix entropy: von Neumann entropy of the trace-normalised covariance of representations.

    Rows of ``x`` (n, d) are token or sample representations. They are centred (column means
    removed), each row is scaled to unit L2 norm, and

        S = X^T X / n,   Sigma = S / tr(S),   H(Sigma) = -sum_i l_i log l_i,

    with ``l_i`` the eigenvalues of ``Sigma`` (they sum to 1). ``0 <= H <= log min(n, d)``;
    ``exp(H)`` is ``erank``. Units: nats by default (``base``).

    Args:
        base: logarithm base (default e: nats).
        center: remove column means first (default True).
        normalize_rows: scale every row to unit L2 norm (default True).

    Caveats: bounded by ``log min(n, d)``, so compare values at equal ``n`` and ``d``;
    Diff-eRank is the difference of this quantity (or of erank) between two models on the same
    inputs.

    Citation: Wei, Tan, Zhang, Wang, Huang, "Diff-eRank: A Novel Rank-Based Metric for Evaluating
    Large Language Models", arXiv:2401.17139.
    """

    citation = (
        "Diff-eRank: A Novel Rank-Based Metric for Evaluating Large Language Models",
        "arXiv:2401.17139",
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "gram"}

    def __init__(
        self, base: float = math.e, center: bool = True, normalize_rows: bool = True
    ) -> None:
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)
        self.center = check_flag(center, "center")
        self.normalize_rows = check_flag(normalize_rows, "normalize_rows")

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "matrix-entropy")
        z = as_matrix(x, "x", min_rows=2 if self.center else 1)
        z = preprocess_rows(z, center=self.center, normalize_rows=self.normalize_rows)
        lam = normalized_spectrum(covariance_eigenvalues(z))
        h = float(shannon(lam))
        return finish(
            h / self._log_base, {"eigenvalues": to_host(lam), "units": self.units}, details
        )
