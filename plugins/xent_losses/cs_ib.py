"""cs-ib: the Cauchy-Schwarz divergence information bottleneck objective for regression."""

from __future__ import annotations

import math

import torch

import xent_core
from xent_core import BadInputError, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "cs-ib"
DENOMINATORS = ("squared-sum", "sum-of-squares")


class CSIBLoss(Loss):
    """cs-ib: Cauchy-Schwarz information bottleneck for regression (conditional CS divergence + CS-QMI).

    With ``x`` the inputs, ``z`` the bottleneck representation, ``y`` the targets and ``y_hat``
    the predictions of one batch, Gaussian kernels of bandwidth ``sigma`` and the KDE estimators
    of ``cs-divergence`` / ``cs-qmi``:

        L = D_CS(p(y|x) || q(y_hat|x)) + beta * I_CS(x; z) / sqrt(I_CS(x; x) I_CS(z; z))

    The prediction term is the conditional CS divergence (paper's Eq. 18; see
    ``CSDivergence.conditional``): ``log sum_j (sum_i K_ji L_ji) / d_j`` for the pairs (y, y),
    (y_hat, y_hat) and, times -2, (y_hat, y), with ``K`` the Gram matrix of ``x``. It is 0 when
    ``y_hat == y``. Every sum is a log-sum-exp, so far-apart points do not underflow.

    Inputs: ``features`` (n, ...) the network's inputs (flattened per row), ``latent`` (n, ...)
    the representation ``z``, ``predictions`` and ``values`` (n,) or (n, dy). The batch is
    coupled: the loss is one number (``reduction='mean'`` only). Cost: O(n^2 (dx + dz + dy))
    time and about ten n x n matrices of memory (kept for the backward pass); batches above
    ``max_batch`` rows are refused.

    Args:
        beta: weight of the compression term (0.01 in the official code).
        sigma: kernel bandwidth of every variable (1.0 as the code), or 'median' (per variable).
        denominator: 'squared-sum' (plug-in estimate of p(x)^2) or 'sum-of-squares' (official code).
        normalized: normalise the CS-QMI by sqrt(I(x;x) I(z;z)) (True, as the code).
        base: logarithm base of the result (default e: nats; the code uses 2).
        max_batch: largest batch accepted (O(n^2) memory).
        reduction: only 'mean' (the objective couples the whole batch).

    Citation: Yu, Yu, Lokse, Jenssen, Principe, "Cauchy-Schwarz Divergence Information Bottleneck
    for Regression" (arXiv:2404.17951).
    """

    citation = (
        ("Cauchy-Schwarz Divergence Information Bottleneck for Regression", "arXiv:2404.17951"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        beta: float = 0.01,
        sigma: float | str = 1.0,
        denominator: str = "squared-sum",
        normalized: bool = True,
        base: float = math.e,
        max_batch: int = 4096,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.beta = validate.nonnegative("beta", beta)
        self.denominator = validate.choice("denominator", denominator, DENOMINATORS)
        self.normalized = validate.flag("normalized", normalized)
        self.base = validate.positive("base", base)
        if self.base == 1.0:
            raise xent_core.BadParameterError("base must be > 0 and != 1")
        self.max_batch = validate.integer("max_batch", max_batch, low=2)
        self.reduction = validate.reduction(reduction, ("mean",))
        # the kernel estimators come from the registry (the estimators plugin)
        self._div = xent_core.estimator("cs-divergence", sigma=sigma)
        self._qmi = xent_core.estimator("cs-qmi", sigma=sigma, normalized=self.normalized)
        self.sigma = self._div.sigma

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A regression batch (9 rows): inputs, a representation, noisy predictions, targets."""
        x = torch.randn(9, 3, generator=generator)
        y = x[:, 0] ** 2 + 0.3 * torch.randn(9, generator=generator)
        return {
            "features": x,
            "latent": torch.tanh(x @ torch.randn(3, 4, generator=generator)),
            "predictions": y + 0.5 * torch.randn(9, generator=generator),
            "values": y,
        }

    def _rows(self, name: str, t: torch.Tensor, n: int | None) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 1:
            raise BadInputError(f"{_WHO}: {name} must be a floating-point tensor (n, ...)")
        if n is not None and t.shape[0] != n:
            raise BadInputError(
                f"{_WHO}: {name} has {t.shape[0]} rows, features has {n}: rows must be paired"
            )
        check_finite_values(t, _WHO, name)
        return t.unsqueeze(1) if t.dim() == 1 else t.flatten(1)

    def forward(
        self,
        features: torch.Tensor,
        latent: torch.Tensor,
        predictions: torch.Tensor,
        values: torch.Tensor,
    ) -> torch.Tensor:
        x = self._rows("features", features, None)
        n = x.shape[0]
        z = self._rows("latent", latent, n)
        y_hat, y = self._rows("predictions", predictions, n), self._rows("values", values, n)
        if y_hat.shape != y.shape:
            raise BadInputError(
                f"{_WHO}: predictions {tuple(predictions.shape)} and values "
                f"{tuple(values.shape)} must have the same shape"
            )
        if n < 2:
            raise BadInputError(f"{_WHO}: needs a batch of at least 2 rows; got {n}")
        if n > self.max_batch:
            gib = 10 * n * n * 4 / 2**30
            raise BadInputError(
                f"{_WHO}: a batch of {n} rows builds n x n kernel matrices (O(n^2) memory, "
                f"~{gib:.1f} GiB); split it or raise max_batch={self.max_batch}"
            )
        # float64 stays float64 (either differentiable input); anything else runs in float32
        wide = torch.float64 in (latent.dtype, predictions.dtype)
        dtype = torch.float64 if wide else torch.float32
        x, z, y, y_hat = (t.to(dtype) for t in (x, z, y, y_hat))
        pred = self._div.conditional(x, y, y_hat, self.denominator)
        comp = self._qmi.tensor(x, z)
        lb = math.log(self.base)  # the normalised QMI is a ratio: it has no unit
        return pred / lb + self.beta * (comp if self.normalized else comp / lb)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, sigma={self.sigma!r}, denominator={self.denominator!r}, "
            f"normalized={self.normalized}"
        )
