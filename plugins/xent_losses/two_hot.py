"""Two-hot: regression trained as classification against the two nearest support atoms."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import check_reduction, reduce, soft_nll
from ._regression import check_support, prepare_values, softmax_mean

_WHO = "two-hot"


def support_atoms(
    vmin: float, vmax: float, num_bins: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """(num_bins,) equally spaced atoms from vmin to vmax (both ends included)."""
    return torch.linspace(vmin, vmax, num_bins, dtype=dtype, device=device)


def two_hot_target(values: torch.Tensor, vmin: float, vmax: float, num_bins: int) -> torch.Tensor:
    """(..., num_bins) weights on the two atoms around clamp(y), linear in the distance.

    With atoms ``a_j`` and ``a_j <= y <= a_{j+1}``: ``w_j = (a_{j+1} - y) / (a_{j+1} - a_j)``,
    ``w_{j+1} = 1 - w_j``, so ``sum_j w_j a_j = y`` exactly.
    """
    dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
    y = values.to(dtype).clamp(vmin, vmax)
    pos = (y - vmin) / (vmax - vmin) * (num_bins - 1)
    lower = pos.floor().clamp(max=num_bins - 2)
    frac = pos - lower
    lower = lower.long()
    out = torch.zeros(*y.shape, num_bins, dtype=dtype, device=values.device)
    out.scatter_(-1, lower[..., None], (1.0 - frac)[..., None])
    out.scatter_(-1, lower[..., None] + 1, frac[..., None])
    return out


def two_hot_predict(logits: torch.Tensor, vmin: float, vmax: float) -> torch.Tensor:
    """Scalar prediction from (..., num_bins) logits: ``sum_j softmax(logits)_j * a_j``."""
    return softmax_mean(logits, support_atoms, vmin, vmax)


def two_hot_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    *,
    vmin: float,
    vmax: float,
    num_bins: int,
    reduction: str = "mean",
) -> torch.Tensor:
    """Functional form of :class:`TwoHotLoss`."""
    b, y = prepare_values(logits, values, num_bins, _WHO)
    target = two_hot_target(y, vmin, vmax, num_bins)
    logp = torch.log_softmax(b.logits, dim=-1)
    return reduce(soft_nll(target, logp), b, reduction)


class TwoHotLoss(Loss):
    """Two-hot: cross-entropy to the two support atoms bracketing a scalar regression target.

    The support is ``num_bins`` equally spaced atoms ``a_0 = vmin, ..., a_{B-1} = vmax`` (both
    ends included, so every value in [vmin, vmax] is represented exactly). A value ``y``
    (clamped to the support) puts weight ``(a_{j+1} - y) / (a_{j+1} - a_j)`` on its lower
    neighbour ``a_j`` and the rest on ``a_{j+1}``; ``l = -sum_j w_j log softmax(logits)_j``.
    ``predict(logits) = sum_j softmax(logits)_j a_j`` (:func:`two_hot_predict`). NaN values mark
    ignored items. Documented choice: atoms at the bin locations including both ends (HL-Gauss
    uses bin centres); values outside the support are clamped.

    Inputs: ``logits`` (..., num_bins), ``values`` float (...).

    Args:
        vmin: first atom of the support.
        vmax: last atom of the support (> vmin).
        num_bins: number of atoms (>= 2).
        reduction: ``"mean"`` (over non-ignored items), ``"sum"`` or ``"none"``.

    Citation: Farebrother et al., "Stop Regressing: Training Value Functions via Classification
    for Scalable Deep RL" (arXiv:2403.03950); two-hot targets as in Schrittwieser et al.,
    "Mastering Atari, Go, Chess and Shogi by Planning with a Learned Model" (arXiv:1911.08265).
    """

    citation = (
        (
            "Stop Regressing: Training Value Functions via Classification for Scalable Deep RL",
            "arXiv:2403.03950",
        ),
        (
            "Mastering Atari, Go, Chess and Shogi by Planning with a Learned Model",
            "arXiv:1911.08265",
        ),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}
    inputs = ("logits", "values")
    optional_inputs = ()

    def __init__(self, vmin: float, vmax: float, num_bins: int, reduction: str = "mean") -> None:
        super().__init__()
        self.vmin, self.vmax, self.num_bins = check_support(vmin, vmax, num_bins, min_bins=2)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        return two_hot_loss(
            logits,
            values,  # type: ignore[arg-type]  # None is reported as a missing input
            vmin=self.vmin,
            vmax=self.vmax,
            num_bins=self.num_bins,
            reduction=self.reduction,
        )

    def target(self, values: torch.Tensor) -> torch.Tensor:
        """The (..., num_bins) two-hot target of ``values``."""
        return two_hot_target(values, self.vmin, self.vmax, self.num_bins)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Scalar predictions (...) from logits (..., num_bins)."""
        return two_hot_predict(logits, self.vmin, self.vmax)

    def extra_repr(self) -> str:
        return (
            f"vmin={self.vmin}, vmax={self.vmax}, num_bins={self.num_bins}, "
            f"reduction={self.reduction!r}"
        )
