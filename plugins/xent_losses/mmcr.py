"""MMCR: maximum manifold capacity representations (nuclear norm of the view centroids)."""

from __future__ import annotations

import torch

from xent_core import BadInputError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "mmcr"
LAYOUTS = ("sample-major", "view-major")


def _gather(z: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, with gradient to the local rows."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class MMCRLoss(Loss):
    """MMCR: maximise the nuclear norm of the centroids of each sample's augmented views.

    With ``Z_b`` the (N, d) matrix of the N views of sample b (rows normalised to unit length
    when ``normalize``) and the centroid matrix ``C`` (B, d) whose row b is the mean of ``Z_b``:

        L = lmbda * (1/B) sum_b ||Z_b||_*  -  ||C||_*,

    ``||.||_*`` the nuclear norm (sum of singular values, ``torch.linalg.svdvals``). The loss is
    one value for the batch (it couples the samples); it is computed in float32 at least. With
    ``gather_distributed=True`` and an initialised process group, ``C`` holds every rank's
    centroids (gathered with gradient) and the local term each rank's own samples, so the mean
    of the ranks' losses is the whole-batch loss.

    Inputs: ``embeddings`` (B * N, d) with ``n_views`` = N, or (B, N, d) (N read from the shape).

    Args:
        n_views: views per sample N of a 2-D input (ignored for a 3-D (B, N, d) input).
        lmbda: weight of the local nuclear norms (0, the official CIFAR setting; lightly uses 5e-3).
        normalize: scale every embedding to unit L2 norm first (as the official code).
        layout: row order of a 2-D input: 'sample-major' (consecutive rows are one sample's
            views, the official code) or 'view-major' (all first views, then all second, ...).
        gather_distributed: centroids from every rank (all-gather with gradient).
        reduction: only 'mean' (the loss couples the whole batch into one value).

    Citation: Yerxa, Kuang, Simoncelli, Chung, "Learning Efficient Coding of Natural Images with
    Maximum Manifold Capacity Representations" (arXiv:2303.03307).
    """

    citation = (
        "Learning Efficient Coding of Natural Images with Maximum Manifold Capacity Representations",
        "arXiv:2303.03307",
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        n_views: int = 2,
        lmbda: float = 0.0,
        normalize: bool = True,
        layout: str = "sample-major",
        gather_distributed: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.n_views = validate.integer("n_views", n_views, low=1)
        self.lmbda = validate.nonnegative("lmbda", lmbda)
        self.normalize = validate.flag("normalize", normalize)
        self.layout = validate.choice("layout", layout, LAYOUTS)
        self.gather_distributed = validate.flag("gather_distributed", gather_distributed)
        self.reduction = validate.reduction(reduction, ("mean",))

    def _views(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, N, d) from the input, in the compute dtype."""
        if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
            raise BadInputError(
                f"{_WHO}: embeddings must be a floating-point tensor (B * n_views, d) or (B, N, d)"
            )
        if embeddings.dim() not in (2, 3) or embeddings.shape[-1] < 1:
            raise BadInputError(
                f"{_WHO}: embeddings must have shape (B * n_views, d) or (B, N, d), got "
                f"{tuple(embeddings.shape)}"
            )
        dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
        z = embeddings.to(dtype)
        if z.shape[0] < 1 or (z.dim() == 3 and z.shape[1] < 1):
            raise BadInputError(
                f"{_WHO}: embeddings hold no sample (shape {tuple(embeddings.shape)})"
            )
        if z.dim() == 2:
            rows, n, d = z.shape[0], self.n_views, z.shape[1]
            if rows % n:
                raise BadInputError(
                    f"{_WHO}: {rows} rows are not a whole number of samples of n_views={n} views"
                )
            z = (
                z.reshape(rows // n, n, d)
                if self.layout == "sample-major"
                else z.reshape(n, rows // n, d).transpose(0, 1)
            )
        check_finite_values(z, _WHO, "embeddings")
        return z

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        z = self._views(embeddings)
        if self.normalize:
            norms = z.norm(dim=-1, keepdim=True)
            if input_checks_enabled() and bool((norms == 0).any()):
                raise BadInputError(
                    f"{_WHO}: {int((norms == 0).sum())} embedding(s) are zero and cannot be "
                    "normalised; pass normalize=False or drop them"
                )
            z = z / norms
        centroids = z.mean(dim=1)  # (B, d)
        if self.gather_distributed and _distributed():
            centroids = _gather(centroids)
        loss = -torch.linalg.svdvals(centroids).sum()
        if self.lmbda:
            local = torch.linalg.svdvals(z).sum(dim=-1)  # (B,): ||Z_b||_*
            loss = loss + self.lmbda * local.mean()
        return loss

    def extra_repr(self) -> str:
        return (
            f"n_views={self.n_views}, lmbda={self.lmbda}, normalize={self.normalize}, "
            f"layout={self.layout!r}, gather_distributed={self.gather_distributed}"
        )
