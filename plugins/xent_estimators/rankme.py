"""RankMe: effective rank of an embedding matrix from its singular values."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish, no_second_input, pow2_scale, shannon, to_host


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
        self.eps = validate.nonnegative("eps", eps)
        self.center = validate.flag("center", center)
        self.units = "effective dimensions"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "rankme")
        z = as_matrix(x, "x", min_rows=1)
        if self.center:
            z = z - z.mean(dim=0, keepdim=True)
        scale = pow2_scale(z)  # exact; RankMe is scale-invariant, and 1e200 data stays finite
        s = torch.linalg.svdvals(z / scale)
        total = s.sum()
        if not bool(total > 0):
            raise BadInputError("x is all zeros: its rank is undefined")
        p = s / total + self.eps
        value = math.exp(float(shannon(p)))
        info = {"singular_values": to_host(s) * scale, "p": to_host(p)}  # inf past float64
        return finish(value, info, details)
