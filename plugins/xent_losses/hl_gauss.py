"""HL-Gauss: regression trained as classification against a Gaussian histogram target."""

from __future__ import annotations

import math

import torch

from xent_core.base_loss import Loss

from ._common import check_number, check_reduction, reduce, soft_nll
from ._regression import check_support, prepare_values, softmax_mean

_WHO = "hl-gauss"


def bin_edges(
    vmin: float, vmax: float, num_bins: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """(num_bins + 1,) equally spaced bin edges from vmin to vmax."""
    return torch.linspace(vmin, vmax, num_bins + 1, dtype=dtype, device=device)


def bin_centers(
    vmin: float, vmax: float, num_bins: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """(num_bins,) centres of the equally spaced bins of [vmin, vmax]."""
    edges = bin_edges(vmin, vmax, num_bins, dtype=dtype, device=device)
    return (edges[:-1] + edges[1:]) / 2


def hl_gauss_target(
    values: torch.Tensor, vmin: float, vmax: float, num_bins: int, sigma_ratio: float = 0.75
) -> torch.Tensor:
    """(..., num_bins) histogram of N(clamp(y), sigma^2) over the bins, renormalised to sum 1.

    ``p_i = (Phi((e_{i+1} - y)/sigma) - Phi((e_i - y)/sigma)) / (Phi((vmax - y)/sigma) -
    Phi((vmin - y)/sigma))`` with ``sigma = sigma_ratio * (vmax - vmin) / num_bins``.
    """
    dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
    y = values.to(dtype).clamp(vmin, vmax)
    sigma = sigma_ratio * (vmax - vmin) / num_bins
    edges = bin_edges(vmin, vmax, num_bins, dtype=dtype, device=values.device)
    cdf = torch.erf((edges - y[..., None]) / (math.sqrt(2.0) * sigma))
    mass = cdf[..., -1:] - cdf[..., :1]
    return (cdf[..., 1:] - cdf[..., :-1]) / mass


def hl_gauss_predict(logits: torch.Tensor, vmin: float, vmax: float) -> torch.Tensor:
    """Scalar prediction from (..., num_bins) logits: ``sum_i softmax(logits)_i * centre_i``."""
    return softmax_mean(logits, bin_centers, vmin, vmax)


def hl_gauss_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    *,
    vmin: float,
    vmax: float,
    num_bins: int,
    sigma_ratio: float = 0.75,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`HLGaussLoss`."""
    b, y = prepare_values(logits, values, num_bins, _WHO)
    target = hl_gauss_target(y, vmin, vmax, num_bins, sigma_ratio)
    logp = torch.log_softmax(b.logits, dim=-1)
    return reduce(soft_nll(target, logp), b, reduction)


class HLGaussLoss(Loss):
    """HL-Gauss: cross-entropy to a Gaussian-smoothed histogram of a scalar regression target.

    The support [vmin, vmax] is cut into ``num_bins`` equal bins with edges ``e_0..e_B`` and
    centres ``c_i``; ``sigma = sigma_ratio * bin_width``. A value ``y`` (clamped to the support)
    becomes the histogram ``p_i = (Phi((e_{i+1} - y)/sigma) - Phi((e_i - y)/sigma)) / Z`` of
    N(y, sigma^2) renormalised over the support, and ``l = -sum_i p_i log softmax(logits)_i``.
    ``predict(logits) = sum_i softmax(logits)_i c_i`` turns logits back into a scalar
    (:func:`hl_gauss_predict`). NaN values mark ignored items. Documented choice: values outside
    [vmin, vmax] are clamped to it, so the target is always a proper histogram.

    Inputs: ``logits`` (..., num_bins), ``values`` float (...).

    Args:
        vmin: lower end of the support.
        vmax: upper end of the support (> vmin).
        num_bins: number of bins (>= 2).
        sigma_ratio: Gaussian width in bin widths (> 0; 0.75 is the paper's recommendation).
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Farebrother et al., "Stop Regressing: Training Value Functions via Classification
    for Scalable Deep RL" (arXiv:2403.03950).
    """

    citation = (
        "Stop Regressing: Training Value Functions via Classification for Scalable Deep RL",
        "arXiv:2403.03950",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}
    inputs = ("logits", "values")
    optional_inputs = ()

    def __init__(
        self,
        vmin: float,
        vmax: float,
        num_bins: int,
        sigma_ratio: float = 0.75,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.vmin, self.vmax, self.num_bins = check_support(vmin, vmax, num_bins, min_bins=2)
        self.sigma_ratio = check_number("sigma_ratio", sigma_ratio, low=0.0, low_open=True)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        return hl_gauss_loss(
            logits,
            values,  # type: ignore[arg-type]  # None is reported as a missing input
            vmin=self.vmin,
            vmax=self.vmax,
            num_bins=self.num_bins,
            sigma_ratio=self.sigma_ratio,
            reduction=self.reduction,
        )

    def target(self, values: torch.Tensor) -> torch.Tensor:
        """The (..., num_bins) target histogram of ``values``."""
        return hl_gauss_target(values, self.vmin, self.vmax, self.num_bins, self.sigma_ratio)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Scalar predictions (...) from logits (..., num_bins)."""
        return hl_gauss_predict(logits, self.vmin, self.vmax)

    def extra_repr(self) -> str:
        return (
            f"vmin={self.vmin}, vmax={self.vmax}, num_bins={self.num_bins}, "
            f"sigma_ratio={self.sigma_ratio}, reduction={self.reduction!r}"
        )
