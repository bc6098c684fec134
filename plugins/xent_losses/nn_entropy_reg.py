"""nn-entropy-reg: nearest-neighbour entropy regulariser (KoLeo and manifold-entropy forms)."""

from __future__ import annotations

import torch

from xent_core import BadInputError, BadParameterError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from ._common import check_finite_values

_WHO = "nn-entropy-reg"
MODES = ("koleo", "mee")


def nearest_other(z: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest other row within its group; ``z`` is (G, g, d), g >= 2.

    Runs without gradient (the indices only): the distances are recomputed with gradient.
    """
    with torch.no_grad():
        dist = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
        eye = torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
        return dist.masked_fill(eye, torch.inf).argmin(dim=-1)


class NNEntropyRegLoss(Loss):
    """Nearest-neighbour entropy regulariser: spread embeddings apart (KoLeo or MEE form).

    ``mode='koleo'`` (Sablayrolles et al.; DINOv2's KoLeo): with ``z`` normalised to unit rows
    and ``d_i = min_{j != i} ||z_i - z_j||`` (nearest other row of the same group),

        l_i = -log(d_i + eps),   L = mean_i l_i,

    the Kozachenko-Leonenko entropy estimate up to constants. ``mode='mee'`` (manifold entropy
    estimation, Liu et al.): rows are not normalised, and with the mean squared difference
    ``m(a, b) = mean_k (a_k - b_k)^2``,

        d_i = min_s m(z_i, R_{s,i}),   L = -log(mean_i d_i + eps),

    where ``R`` (buffer_size, B, d) is a FIFO replay buffer of past batches, indexed by batch
    position i (as the official code), initialised U(-1, 1) (from ``seed``) at the first batch
    and updated with each batch (detached, after the loss is computed, in training mode only);
    ``buffer_size=0`` uses the other rows of the batch instead (``min_{j != i} m(z_i, z_j)``).
    The nearest-neighbour search runs without gradient; the distance to the chosen neighbour
    is recomputed with gradient. The paper ramps the weight of the MEE term linearly over the
    first 100 epochs: give the term a callable weight in a stack to do the same.

    Inputs: ``embeddings`` (n, d). MEE with a buffer needs the same (B, d) at every call.

    Args:
        mode: 'koleo' or 'mee'.
        eps: added inside the log (duplicate rows give a finite loss).
        normalize: scale rows to unit L2 norm first (None: True for koleo, False for mee).
        group_size: KoLeo within consecutive groups of this many rows (None: the whole batch).
        buffer_size: MEE replay buffer length in batches (0: neighbours within the batch).
        seed: seed of the MEE buffer's U(-1, 1) initialisation.
        reduction: 'mean', 'sum' or 'none' (per row) for koleo; 'mean' only for mee.

    Citation: Sablayrolles, Douze, Schmid, Jegou, "Spreading vectors for similarity search"
    (arXiv:1806.03198); Liu et al., "Combating Mode Collapse in GANs via Manifold Entropy
    Estimation" (arXiv:2208.12055).
    """

    citation = (
        ("Spreading vectors for similarity search", "arXiv:1806.03198"),
        ("Combating Mode Collapse in GANs via Manifold Entropy Estimation", "arXiv:2208.12055"),
    )
    capabilities = {"differentiable": True, "devices": ("cpu", "cuda")}

    def __init__(
        self,
        mode: str = "koleo",
        eps: float = 1e-8,
        normalize: bool | None = None,
        group_size: int | None = None,
        buffer_size: int = 1024,
        seed: int = 0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.mode = validate.choice("mode", mode, MODES)
        self.eps = validate.nonnegative("eps", eps)
        normalize = validate.optional(validate.flag, "normalize", normalize)
        self.normalize = (self.mode == "koleo") if normalize is None else normalize
        self.group_size = validate.optional(validate.integer, "group_size", group_size, low=2)
        self.buffer_size = validate.integer("buffer_size", buffer_size, low=0)
        self.seed = validate.integer("seed", seed)
        allowed = ("mean", "sum", "none") if self.mode == "koleo" else ("mean",)
        self.reduction = validate.reduction(reduction, allowed)
        if self.mode == "mee" and self.group_size is not None:
            raise BadParameterError("nn-entropy-reg: group_size applies to mode='koleo' only")
        self.register_buffer("memory", torch.empty(0), persistent=False)
        self.register_buffer("cursor", torch.zeros((), dtype=torch.int64), persistent=False)

    def _rows(self, embeddings: torch.Tensor) -> torch.Tensor:
        if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
            raise BadInputError(f"{_WHO}: embeddings must be a floating-point tensor (n, d)")
        if embeddings.dim() != 2 or embeddings.shape[1] < 1:
            raise BadInputError(
                f"{_WHO}: embeddings must have shape (n, d), got {tuple(embeddings.shape)}"
            )
        need = 1 if self.mode == "mee" and self.buffer_size else 2
        if embeddings.shape[0] < need:
            raise BadInputError(
                f"{_WHO}: needs at least {need} rows to find neighbours, got {embeddings.shape[0]}"
            )
        check_finite_values(embeddings, _WHO, "embeddings")
        dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
        z = embeddings.to(dtype)
        if self.normalize:
            norms = torch.linalg.vector_norm(z, dim=1, keepdim=True)
            if input_checks_enabled() and bool((norms == 0).any()):
                raise BadInputError(
                    f"{_WHO}: {int((norms == 0).sum())} row(s) are zero and cannot be "
                    "normalised; pass normalize=False or drop them"
                )
            z = z / norms
        return z

    def _koleo(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        g = self.group_size or n
        if n % g:
            raise BadInputError(f"{_WHO}: {n} rows are not a whole number of groups of {g}")
        groups = z.reshape(n // g, g, -1)
        idx = nearest_other(groups)
        nearest = torch.gather(groups, 1, idx[..., None].expand_as(groups))
        d = torch.linalg.vector_norm(groups - nearest, dim=-1).reshape(n)
        per = -torch.log(d + self.eps)
        if self.reduction == "none":
            return per
        return per.sum() if self.reduction == "sum" else per.mean()

    def _memory(self, z: torch.Tensor) -> torch.Tensor:
        shape = (self.buffer_size, *z.shape)
        if self.memory.numel() == 0:
            gen = torch.Generator().manual_seed(self.seed)
            init = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
            self.memory = init.to(device=z.device, dtype=z.dtype)
            self.cursor.zero_()
        elif tuple(self.memory.shape) != shape:
            raise BadInputError(
                f"{_WHO}: mode='mee' keeps a buffer per batch position: batches must all have "
                f"shape {tuple(self.memory.shape[1:])}, got {tuple(z.shape)}"
            )
        return self.memory.to(dtype=z.dtype)

    def _mee(self, z: torch.Tensor) -> torch.Tensor:
        if self.buffer_size == 0:
            others = z[nearest_other(z[None])[0]]
            d = (z - others).square().mean(dim=-1)
        else:
            memory = self._memory(z)  # (S, B, d)
            with torch.no_grad():
                pick = (z.detach()[None] - memory).square().mean(dim=-1).argmin(dim=0)  # (B,)
            chosen = memory[pick, torch.arange(z.shape[0], device=z.device)]
            d = (z - chosen).square().mean(dim=-1)
            if self.training:
                slot = int(self.cursor)
                self.memory[slot] = z.detach().to(self.memory.dtype)
                self.cursor.fill_((slot + 1) % self.buffer_size)
        return -torch.log(d.mean() + self.eps)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        z = self._rows(embeddings)
        return self._koleo(z) if self.mode == "koleo" else self._mee(z)

    def extra_repr(self) -> str:
        extra = f", group_size={self.group_size}" if self.mode == "koleo" else ""
        if self.mode == "mee":
            extra = f", buffer_size={self.buffer_size}"
        return f"mode={self.mode!r}, eps={self.eps}, normalize={self.normalize}{extra}"
