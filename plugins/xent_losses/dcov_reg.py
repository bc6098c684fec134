"""dcov-reg: distance-covariance dependence penalty between predictions and protected attributes."""

from __future__ import annotations

import torch

from xent_core import BadInputError, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "dcov-reg"
STATISTICS = ("dcov2", "dcor2", "u-dcov2", "jdcov2")


def _matrix(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise BadInputError(f"{_WHO}: {name} must be a floating-point tensor (n,) or (n, k)")
    if t.dim() not in (1, 2) or (t.dim() == 2 and t.shape[1] < 1):
        raise BadInputError(f"{_WHO}: {name} must have shape (n,) or (n, k), got {tuple(t.shape)}")
    check_finite_values(t, _WHO, name)
    return t[:, None] if t.dim() == 1 else t


class DCovRegLoss(Loss):
    """Distance-covariance penalty: the dependence between predictions and protected attributes.

    With ``A`` and ``B`` the double-centred distance matrices (``||.||^exponent``) of the batch's
    ``predictions`` and ``protected`` attributes (the math of the ``distance-correlation``
    estimator, shared through ``xent_estimators.dcov_terms``):

        dcov2:   dCov^2_n = (1/n^2) sum_ij A_ij B_ij          (V-statistic, >= 0)
        dcor2:   dCov^2_n / sqrt(dVar^2_n(pred) dVar^2_n(prot))  (squared dCor, in [0, 1])
        u-dcov2: the unbiased U-statistic (U-centring, n > 3; may be negative)
        jdcov2:  JdCov^2_n of predictions and each protected column (Chakraborty-Zhang; c)

    0 in population iff independence (exponent < 2). Add it to the task loss with a weight
    (``task + lam * dcov-reg``). It couples the samples of a batch (O(n^2) memory), so batch
    size matters. dcor2 of a constant variable is 0 (with zero gradient).

    Inputs: ``predictions`` (n,) or (n, k) (scores, probabilities or outputs), ``protected``
    (n,) or (n, q) floats (one-hot encode categorical attributes; for jdcov2 each column is one
    attribute).

    Args:
        statistic: 'dcov2', 'dcor2', 'u-dcov2' or 'jdcov2'.
        exponent: power of the Euclidean distance, in (0, 2).
        c: the constant of jdcov2 (> 0).
        reduction: only 'mean' (one value for the batch).

    Citation: Lee, Antonio, Avanzi, Marchi, Zhou, "Machine Learning with Multitype Protected
    Attributes: Intersectional Fairness through Regularisation" (arXiv:2509.08163); Szekely,
    Rizzo, Bakirov, "Measuring and testing dependence by correlation of distances"
    (arXiv:0803.4101); Chakraborty and Zhang, "Distance Metrics for Measuring Joint Dependence
    with Application to Causal Inference" (arXiv:1711.09179).
    """

    citation = (
        ("Machine Learning with Multitype Protected Attributes: Intersectional Fairness through Regularisation", "arXiv:2509.08163"),
        ("Measuring and testing dependence by correlation of distances", "arXiv:0803.4101"),
        ("Distance Metrics for Measuring Joint Dependence with Application to Causal Inference", "arXiv:1711.09179"),
    )  # fmt: skip
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        statistic: str = "dcov2",
        exponent: float = 1.0,
        c: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.statistic = validate.choice("statistic", statistic, STATISTICS)
        self.exponent = validate.number(
            "exponent", exponent, low=0, high=2, low_open=True, high_open=True
        )
        self.c = validate.positive("c", c)
        self.reduction = validate.reduction(reduction, ("mean",))

    def forward(self, predictions: torch.Tensor, protected: torch.Tensor) -> torch.Tensor:
        from xent_estimators import dcov_terms, jdcov2

        x = _matrix(predictions, "predictions")
        s = _matrix(protected, "protected")
        n = x.shape[0]
        if s.shape[0] != n:
            raise BadInputError(
                f"{_WHO}: predictions have {n} rows and protected {s.shape[0]}: must be paired"
            )
        need = 4 if self.statistic == "u-dcov2" else 2
        if n < need:
            raise BadInputError(f"{_WHO}: {self.statistic} needs at least {need} samples, got {n}")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x, s = x.to(dtype), s.to(device=x.device, dtype=dtype)
        if self.statistic == "jdcov2":
            parts = [s[:, j : j + 1] for j in range(s.shape[1])]
            return jdcov2([x, *parts], c=self.c, exponent=self.exponent)
        dcov2, vx, vs = dcov_terms(
            x, s, exponent=self.exponent, unbiased=self.statistic == "u-dcov2"
        )
        if self.statistic != "dcor2":
            return dcov2
        prod = vx * vs
        positive = prod > 0  # a constant variable: 0 (and no NaN through sqrt's gradient at 0)
        return torch.where(positive, dcov2 / torch.where(positive, prod, 1.0).sqrt(), 0.0)

    def extra_repr(self) -> str:
        return f"statistic={self.statistic!r}, exponent={self.exponent}, c={self.c}"
