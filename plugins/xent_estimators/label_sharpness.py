"""label-sharpness: the Lipschitz-style sharpness of labels over inputs (Konz and Mazurowski)."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish, to_tensor


class LabelSharpness:
    """label-sharpness: max over pairs of label change per unit input distance (1 / distance).

        K_F = max_{j != k} |y_j - y_k| / ||x_j - x_k||,

    with the numerator ``1[y_j != y_k]`` for class labels (``labels='categorical'``; the official
    code's ``y_j == y_k`` is inverted) and ``|y_j - y_k|`` for ``labels='continuous'``. The
    maximum runs over ``num_pairs`` random pairs with ``j != k`` (1000 in the paper; self-pairs are
    never drawn), or over all pairs when ``num_pairs`` is None. Two equal rows with different
    labels give ``inf``. ``details``: ``pairs`` evaluated, ``argmax`` pair, ``distance`` there.

    Cost: sampled O(M d) time and memory; all pairs O(n^2 d) time, O(1024 n) memory (row chunks);
    on the input's device in float64.

    Args:
        labels: 'categorical' (class ids) or 'continuous' (real-valued targets).
        num_pairs: random pairs to examine (default 1000); None for every pair.
        seed: seed of the pair sampler (default 0).

    Citation: Konz and Mazurowski, "The Effect of Intrinsic Dataset Properties on Generalization:
    Unraveling Learning Differences Between Natural and Medical Images" (arXiv:2401.08865).
    """

    citation = (
        (
            "The Effect of Intrinsic Dataset Properties on Generalization: Unraveling Learning "
            "Differences Between Natural and Medical Images",
            "arXiv:2401.08865",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self, labels: str = "categorical", num_pairs: int | None = 1000, seed: int = 0
    ) -> None:
        self.labels = validate.choice("labels", labels, ("categorical", "continuous"))
        self.num_pairs = validate.optional(validate.integer, "num_pairs", num_pairs, low=1)
        self.seed = validate.integer("seed", seed)
        self.units = "1/distance"

    def _ratio(self, yj: torch.Tensor, yk: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        num = (yj != yk).to(dist.dtype) if self.labels == "categorical" else (yj - yk).abs()
        out = num / dist
        return torch.where(num == 0, torch.zeros_like(out), out)  # 0/0 (equal rows, labels) = 0

    @staticmethod
    def _nearest_other(z: torch.Tensor, lab: torch.Tensor) -> tuple[float, tuple[int, int]] | None:
        """All pairs, class labels: the ratio is 1 / distance, so its max is 1 / the smallest
        distance between rows of different labels (same distances, first pair on ties); None
        when every pair shares a label (the general loop then reports a 0 pair)."""
        n = z.shape[0]
        best, pair = math.inf, (0, 1)
        for s in range(0, n, 1024):
            dist = torch.cdist(z[s : s + 1024], z, compute_mode="donot_use_mm_for_euclid_dist")
            dist.masked_fill_(lab[s : s + 1024, None] == lab[None, :], math.inf)  # and self-pairs
            m = int(dist.argmin())
            if float(dist.view(-1)[m]) < best:
                best, pair = float(dist.view(-1)[m]), (s + m // n, m % n)
        if best == math.inf:
            return None
        return (1.0 / best if best else math.inf), pair

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("label-sharpness needs inputs (x) and labels (y)")
        z = as_matrix(x, "x")
        lab = to_tensor(y, "labels").reshape(-1).to(z.device)
        if lab.numel() != z.shape[0]:
            raise BadInputError(f"labels has {lab.numel()} entries but x has {z.shape[0]} rows")
        if not bool(torch.isfinite(lab).all()):
            raise BadInputError("labels contain NaN or inf")
        n = z.shape[0]
        if self.num_pairs is not None:
            g = torch.Generator().manual_seed(self.seed)
            j = torch.randint(0, n, (self.num_pairs,), generator=g)
            k = (j + torch.randint(1, n, (self.num_pairs,), generator=g)) % n  # uniform, k != j
            j, k = j.to(z.device), k.to(z.device)
            r = self._ratio(lab[j], lab[k], (z[j] - z[k]).norm(dim=1))
            best = int(r.argmax())
            value, pair, pairs = float(r[best]), (int(j[best]), int(k[best])), self.num_pairs
        elif self.labels == "categorical" and (found := self._nearest_other(z, lab)) is not None:
            value, pair = found
            pairs = n * (n - 1)
        else:
            value, pair = -math.inf, (0, 1)
            for s in range(0, n, 1024):
                rows = z[s : s + 1024]
                dist = torch.cdist(rows, z, compute_mode="donot_use_mm_for_euclid_dist")
                r = self._ratio(lab[s : s + 1024, None], lab[None, :], dist)
                idx = torch.arange(rows.shape[0], device=z.device)
                r[idx, idx + s] = -math.inf  # no self-pairs
                m = int(r.argmax())
                if float(r.view(-1)[m]) > value:
                    value, pair = float(r.view(-1)[m]), (s + m // n, m % n)
            pairs = n * (n - 1)
        info = {
            "pairs": pairs,
            "argmax": pair,
            "distance": float((z[pair[0]] - z[pair[1]]).norm()),
        }
        return finish(value, info, details)
