"""Two-hot: regression trained as classification against the two nearest support atoms."""

from __future__ import annotations

import torch

from xent_core.base_loss import Loss

from ._common import check_reduction, reduce
from ._fused_ce import FusedCrossEntropy
from ._regression import check_support, prepare_values, softmax_mean

_WHO = "two-hot"


def support_atoms(
    vmin: float, vmax: float, num_bins: int, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """(num_bins,) equally spaced atoms from vmin to vmax (both ends included)."""
    return torch.linspace(vmin, vmax, num_bins, dtype=dtype, device=device)


def _bracket(
    values: torch.Tensor, vmin: float, vmax: float, num_bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(j, w)``: the index of the lower atom around clamp(y) and the weight of the upper one."""
    dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
    y = values.to(dtype).clamp(vmin, vmax)
    pos = (y - vmin) / (vmax - vmin) * (num_bins - 1)
    lower = pos.floor().clamp(max=num_bins - 2)
    return lower.long(), pos - lower


def two_hot_target(values: torch.Tensor, vmin: float, vmax: float, num_bins: int) -> torch.Tensor:
    """(..., num_bins) weights on the two atoms around clamp(y), linear in the distance.

    With atoms ``a_j`` and ``a_j <= y <= a_{j+1}``: ``w_j = (a_{j+1} - y) / (a_{j+1} - a_j)``,
    ``w_{j+1} = 1 - w_j``, so ``sum_j w_j a_j = y`` exactly.
    """
    lower, frac = _bracket(values, vmin, vmax, num_bins)
    out = torch.zeros(*frac.shape, num_bins, dtype=frac.dtype, device=values.device)
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
    """Functional form of :class:`TwoHotLoss`.

    The loss of the two atoms alone, ``-(1 - w) log p_j - w log p_{j+1}``, by the chunked fused
    cross-entropy with two weighted ids per item (no (N, num_bins) target or log-probabilities
    are kept), the same value as ``-sum_k target_k log p_k`` over the dense target.
    """
    b, y = prepare_values(logits, values, num_bins, _WHO)
    lower, frac = _bracket(y, vmin, vmax, num_bins)
    ids = torch.stack((lower, lower + 1), dim=1)
    weights = torch.stack((1.0 - frac, frac), dim=1) * b.valid[:, None].to(frac.dtype)
    ce, _ = FusedCrossEntropy.apply(b.logits, ids, weights, None, None, None, 1.0, False)
    return reduce(ce, b, reduction)


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
