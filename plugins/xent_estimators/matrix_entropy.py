"""Matrix entropy: von Neumann entropy of the trace-normalised covariance of representations."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError

from ._common import (
    as_matrix,
    check_flag,
    covariance_eigenvalues,
    finish,
    log_base,
    no_second_input,
    normalized_spectrum,
    preprocess_rows,
    to_host,
    unit_name,
)


def spectrum_entropy(lam: torch.Tensor, order: float = 1.0) -> torch.Tensor:
    """Renyi entropy (nats) of a spectrum ``lam`` that sums to 1; ``order=1`` is Shannon's.

    ``H_1 = -sum l log l`` (``0 log 0 = 0``, with a zero gradient there, not NaN),
    ``H_a = log(sum l^a) / (1 - a)`` otherwise. Differentiable in ``lam``.
    """
    positive = lam > 0
    safe = torch.where(positive, lam, torch.ones_like(lam))
    if order == 1.0:
        return -(lam * torch.log(safe)).sum()
    powered = torch.where(positive, safe.pow(order), torch.zeros_like(lam))
    return torch.log(powered.sum()) / (1.0 - order)


def matrix_entropy_tensor(
    x: torch.Tensor,
    *,
    order: float = 1.0,
    center: bool = True,
    normalize_rows: bool = True,
    check: bool = True,
) -> torch.Tensor:
    """Differentiable matrix entropy (nats) of the rows of ``x`` (n, d), as :class:`MatrixEntropy`.

    Rows are centred and normalised as the estimator does; ``Sigma = X^T X / tr(X^T X)``. Order 2
    needs no eigendecomposition: ``sum l^2 = ||X^T X||_F^2 / ||X||_F^4`` (the Gram matrix of the
    smaller side has the same Frobenius norm), so its gradient is stable with repeated
    eigenvalues; other orders use ``eigvalsh``. ``check=False`` skips the data-dependent checks.
    """
    z = preprocess_rows(x, center=center, normalize_rows=normalize_rows, check=check)
    if order == 2.0:
        n, d = z.shape
        gram = z.T @ z if d <= n else z @ z.T
        total = z.square().sum()
        if check and not bool(total > 0):
            raise BadInputError("the spectrum is all zeros: the input matrix is zero")
        return -torch.log(gram.square().sum() / total.square())
    ev = covariance_eigenvalues(z)
    lam = normalized_spectrum(ev) if check else ev.clamp_min(0) / ev.clamp_min(0).sum()
    return spectrum_entropy(lam, order)


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
        h = float(spectrum_entropy(lam, 1.0))
        return finish(
            h / self._log_base, {"eigenvalues": to_host(lam), "units": self.units}, details
        )
