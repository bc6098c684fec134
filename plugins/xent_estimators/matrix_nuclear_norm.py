"""Matrix nuclear norm of representations, by the L_{1,2} approximation, per token."""

from __future__ import annotations

from typing import Any

import torch

from ._common import (
    as_matrix,
    check_choice,
    check_flag,
    finish,
    no_second_input,
    preprocess_rows,
    to_host,
)


class MatrixNuclearNorm:
    """Matrix nuclear norm: L_{1,2} approximation of the nuclear norm of representations, per token.

    Rows of ``x`` (n tokens, d features) are scaled to unit L2 norm (``normalize_rows``). The
    nuclear norm ``|A|_* = sum_k s_k`` is approximated without an SVD by the sum of the ``D``
    largest column L2 norms (the L_{1,2} approximation):

        MNN(A) = (1/n) * sum_{j in top-D} |A[:, j]|_2,     D = min(n, d).

    With orthogonal columns the approximation is exact. ``approximation="exact"`` uses the
    singular values instead (``O(n d min(n, d))``). Dimensionless; divided by the number of
    tokens ``n`` (``per_token``).

    Args:
        approximation: ``"l12"`` (default) or ``"exact"``.
        normalize_rows: scale rows to unit L2 norm first (default True).
        per_token: divide by the number of rows (default True).

    Caveats: the L_{1,2} value depends on the basis (column norms are not rotation invariant); it
    tracks the exact nuclear norm well when the feature axes are roughly decorrelated. Larger
    values mean more spread, less redundant representations.

    Citation: Li, Xia, Wu, Chang, "Large Language Model Evaluation via Matrix Nuclear-Norm",
    arXiv:2410.10672.
    """

    citation = ("Large Language Model Evaluation via Matrix Nuclear-Norm", "arXiv:2410.10672")
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self, approximation: str = "l12", normalize_rows: bool = True, per_token: bool = True
    ) -> None:
        self.approximation = check_choice(approximation, "approximation", ("l12", "exact"))
        self.normalize_rows = check_flag(normalize_rows, "normalize_rows")
        self.per_token = check_flag(per_token, "per_token")
        self.units = "dimensionless"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "matrix-nuclear-norm")
        a = as_matrix(x, "x", min_rows=1)
        a = preprocess_rows(a, center=False, normalize_rows=self.normalize_rows)
        n, d = a.shape
        top = min(n, d)
        if self.approximation == "l12":
            # unit rows are a fresh tensor: square it in place (torch's norm over dim 0 is
            # ~6x slower than this sum)
            col = (a.square_() if self.normalize_rows else a.square()).sum(dim=0).sqrt_()
            norm = torch.topk(col, top).values.sum()
            info = {"column_norms": to_host(col)}
        else:
            s = torch.linalg.svdvals(a)
            norm = s.sum()
            info = {"singular_values": to_host(s)}
        value = float(norm) / (n if self.per_token else 1)
        info.update({"nuclear_norm": float(norm), "n": n, "rank_bound": top})
        return finish(value, info, details)
