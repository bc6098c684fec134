"""NT-Xent (InfoNCE, SimCLR): cross-entropy of each view against its pair among all others."""

from __future__ import annotations

import torch

from xent_core import BadInputError, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "nt-xent"


def _gather(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows (with gradient to the local rows) and this rank's index."""
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0), dist.get_rank()


class NTXentLoss(Loss):
    """NT-Xent: normalised temperature-scaled cross-entropy over 2n views (SimCLR's InfoNCE).

    With ``z = normalize([view_a; view_b])`` (2n rows) and ``s_ij = z_i . z_j / tau``, the
    self-similarity ``s_ii`` is set to ``-inf`` and each anchor is classified against all other
    rows, its positive being the other view of the same sample:

        l = mean_i CE(s_i., pos(i)),   pos(i) = i + n (i < n), i - n (i >= n).

    Rows are normalised before dividing by tau, and the similarities are computed in float32 at
    least (bf16 similarities lose the small differences the loss is about). With
    ``gather_distributed=True`` and an initialised process group, the negatives are every rank's
    rows (gathered with gradient; labels shifted by rank * n); without a process group (or with
    one rank) it is the local loss.

    Inputs: ``view_a`` (n, d), ``view_b`` (n, d): two augmentations of the same n samples.

    Args:
        temperature: tau (0.5, as SimCLR on CIFAR and lightly; SimCLR on ImageNet used 0.1).
        gather_distributed: use all ranks' rows as negatives.
        reduction: ``mean`` (over the 2n anchors), ``sum`` or ``none`` ((2n,): a's anchors, then b's).

    Citation: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
    Visual Representations" (arXiv:2002.05709); used by G-SimCLR (arXiv:2009.12007).
    """

    citation = (
        ("A Simple Framework for Contrastive Learning of Visual Representations", "arXiv:2002.05709"),
        ("G-SimCLR: Self-Supervised Contrastive Learning with Guided Projection via Pseudo Labelling", "arXiv:2009.12007"),
    )  # fmt: skip
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self, temperature: float = 0.5, gather_distributed: bool = False, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.temperature = validate.positive("temperature", temperature)
        self.gather_distributed = validate.flag("gather_distributed", gather_distributed)
        self.reduction = validate.reduction(reduction)

    @staticmethod
    def example_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Two views (6, 5) of the same items (the second a perturbed copy), for the sweep."""
        a = torch.randn(6, 5, generator=generator)
        return {"view_a": a, "view_b": a + 0.3 * torch.randn(6, 5, generator=generator)}

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        for name, v in (("view_a", view_a), ("view_b", view_b)):
            if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.dim() != 2:
                raise BadInputError(f"{_WHO}: {name} must be a floating-point tensor (n, d)")
        if view_a.shape != view_b.shape or view_a.shape[0] < 1:
            raise BadInputError(
                f"{_WHO}: view_a and view_b must have the same shape (n, d) with n >= 1, got "
                f"{tuple(view_a.shape)} and {tuple(view_b.shape)}"
            )
        check_finite_values(view_a, _WHO, "view_a")
        check_finite_values(view_b, _WHO, "view_b")
        dtype = torch.float64 if view_a.dtype == torch.float64 else torch.float32
        n = view_a.shape[0]
        anchors = torch.nn.functional.normalize(torch.cat([view_a, view_b]).to(dtype), dim=1)
        rank, world = 0, 1
        keys = anchors  # (2 n world, d): all a's, then all b's
        if self.gather_distributed:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                world = dist.get_world_size()
                keys_a, rank = _gather(anchors[:n])
                keys_b, _ = _gather(anchors[n:])
                keys = torch.cat([keys_a, keys_b], dim=0)
        sim = (anchors @ keys.T).div_(self.temperature)
        local = torch.arange(n, device=anchors.device) + rank * n
        self_idx = torch.cat([local, local + n * world])
        pos_idx = torch.cat([local + n * world, local])
        rows = torch.arange(2 * n, device=anchors.device)
        sim = sim.index_put_((rows, self_idx), torch.tensor(-torch.inf, dtype=sim.dtype))
        return torch.nn.functional.cross_entropy(sim, pos_idx, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"
