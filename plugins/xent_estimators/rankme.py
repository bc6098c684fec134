"""RankMe: effective rank of an embedding matrix from its singular values."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError

from ._common import as_matrix, finish, no_second_input, shannon, to_host


class RankMe:
    """RankMe: singular-value effective rank of an embedding matrix (n samples x d features).

    With singular values ``s_k`` of the (uncentred) embedding matrix ``Z``,

        p_k = s_k / sum_j s_j + eps,      RankMe(Z) = exp(-sum_k p_k log p_k).

    It lies in ``[1, min(n, d)]`` (up to ``eps``): ``r`` equal non-zero singular values give
    ``r``. Dimensionless (a count of effective dimensions).

    Args:
        eps: the small constant added to each ``p_k`` (default 1e-7, as in the paper); 0 gives the
            exact Roy-Vetterli effective rank of the singular values.
        center: subtract the column means first (default False, as in the paper).

    Not the same as ``erank``, which uses the eigenvalues of the covariance (squared singular
    values of the centred, row-normalised matrix).

    Citation: Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the Downstream Performance
    of Pretrained Self-Supervised Representations by Their Rank", ICML 2023, arXiv:2210.02885.
    """

    citation = (
        "RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised "
        "Representations by Their Rank",
        "arXiv:2210.02885",
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "gram"}

    def __init__(self, eps: float = 1e-7, center: bool = False) -> None:
        eps = float(eps)
        if not math.isfinite(eps) or eps < 0:
            raise BadParameterError(f"eps must be >= 0, got {eps!r}")
        self.eps = eps
        self.center = bool(center)
        self.units = "effective dimensions"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "rankme")
        z = as_matrix(x, "x", min_rows=1)
        if self.center:
            z = z - z.mean(dim=0, keepdim=True)
        s = torch.linalg.svdvals(z)
        total = s.sum()
        if not bool(total > 0):
            raise BadInputError("x is all zeros: its rank is undefined")
        p = s / total + self.eps
        value = math.exp(float(shannon(p)))
        return finish(value, {"singular_values": to_host(s), "p": to_host(p)}, details)
