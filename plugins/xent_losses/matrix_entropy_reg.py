"""matrix-entropy-reg: the matrix (von Neumann / Renyi) entropy of representations, as a loss."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "matrix-entropy-reg"


class MatrixEntropyRegLoss(Loss):
    """Matrix entropy regulariser: keep the spectrum of the representations spread (or not).

    Rows of ``embeddings`` (n, d) are centred and scaled to unit norm (as the ``matrix-entropy``
    estimator, whose math this reuses: ``xent_estimators.matrix_entropy_tensor``), and with
    ``l_i`` the eigenvalues of ``Sigma = Z^T Z / tr(Z^T Z)``,

        H_1 = -sum_i l_i log l_i (von Neumann),   H_a = log(sum_i l_i^a) / (1 - a),
        L = -H if maximize else H   (nats).

    ``order=2`` (default) is ``-log(||Z^T Z||_F^2 / ||Z||_F^4)``: no eigendecomposition, so
    its gradient stays finite when eigenvalues repeat; other orders differentiate ``eigvalsh``,
    whose gradient blows up for (nearly) repeated eigenvalues. ``0 <= H <= log min(n, d)``;
    isotropic features give ``log d``, rank one gives 0.

    Inputs: ``embeddings`` (n, d), n >= 2 when centring.

    Args:
        order: Renyi order a > 0 (1: von Neumann; 2: the stable default).
        maximize: return -H, so that minimising the loss raises the entropy (anti-collapse).
        center: remove the column means first.
        normalize_rows: scale every row to unit L2 norm.
        reduction: only 'mean' (one value for the batch).

    Citation: "Information Shapes Koopman Representation" (arXiv:2510.13025); the matrix entropy
    of Wei et al., "Diff-eRank: A Novel Rank-Based Metric for Evaluating Large Language Models"
    (arXiv:2401.17139).
    """

    citation = (
        ("Information Shapes Koopman Representation", "arXiv:2510.13025"),
        ("Diff-eRank: A Novel Rank-Based Metric for Evaluating Large Language Models", "arXiv:2401.17139"),
    )  # fmt: skip
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        order: float = 2.0,
        maximize: bool = True,
        center: bool = True,
        normalize_rows: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.order = validate.positive("order", order)
        self.maximize = validate.flag("maximize", maximize)
        self.center = validate.flag("center", center)
        self.normalize_rows = validate.flag("normalize_rows", normalize_rows)
        self.reduction = validate.reduction(reduction, ("mean",))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        from xent_estimators import matrix_entropy_tensor

        if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
            raise BadInputError(f"{_WHO}: embeddings must be a floating-point tensor (n, d)")
        if embeddings.dim() != 2 or embeddings.shape[1] < 1:
            raise BadInputError(
                f"{_WHO}: embeddings must have shape (n, d), got {tuple(embeddings.shape)}"
            )
        need = 2 if self.center else 1
        if embeddings.shape[0] < need:
            raise BadInputError(f"{_WHO}: needs at least {need} rows, got {embeddings.shape[0]}")
        check_finite_values(embeddings, _WHO, "embeddings")
        dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
        try:
            h = matrix_entropy_tensor(
                embeddings.to(dtype),
                order=self.order,
                center=self.center,
                normalize_rows=self.normalize_rows,
                check=input_checks_enabled(),
            )
        except BadInputError as exc:
            raise BadInputError(f"{_WHO}: {exc}") from None
        return -h if self.maximize else h

    def extra_repr(self) -> str:
        return f"order={self.order}, maximize={self.maximize}"
