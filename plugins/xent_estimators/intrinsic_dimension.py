"""intrinsic-dimension: Levina-Bickel MLE (MacKay-Ghahramani averaging) and TwoNN."""

from __future__ import annotations

from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import as_matrix, finish, no_second_input, to_host


def neighbour_distances(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """(n, k) Euclidean distances of every row to its k nearest other rows, ascending.

    Rows are processed ``chunk`` at a time, so memory is O(chunk * n); squared distances come from
    one matmul in the input's dtype with the diagonal masked out.
    """
    n = x.shape[0]
    sq = x.square().sum(dim=1)
    out = []
    for start in range(0, n, chunk):
        rows = x[start : start + chunk]
        d2 = torch.add(sq[start : start + chunk, None], sq[None, :])
        d2.sub_(rows @ x.T, alpha=2.0)  # in place: (|a|^2 + |b|^2) - 2 a.b, same rounding
        idx = torch.arange(rows.shape[0], device=x.device)
        d2[idx, idx + start] = float("inf")
        out.append(torch.topk(d2, k, dim=1, largest=False).values.clamp_min(0).sqrt())
    return torch.cat(out)


class IntrinsicDimension:
    """intrinsic-dimension: MLE (Levina-Bickel) or TwoNN estimate of the data's dimension.

    ``method='mle'``: with ``T_j(x)`` the distance from ``x`` to its j-th nearest neighbour,

        m(x)^-1 = (1/(k-1)) sum_{j<k} log(T_k(x) / T_j(x)),   d = 1 / mean_x m(x)^-1,

    the MacKay-Ghahramani correction (average the inverse local estimates, then invert).
    ``method='twonn'`` (Facco et al.): ``mu_i = r_2 / r_1``; sort, keep the smallest
    ``(1 - discard_fraction)`` share, and fit ``-log(1 - i/N) = d log mu_(i)`` through the origin
    by least squares. Duplicate rows are dropped first (they give log 0); the count is in
    ``details``. Matches ``skdim.id.MLE().fit(x, n_neighbors=k)`` (its ``K`` does not set the
    neighbourhood of the global estimate) and ``skdim.id.TwoNN()`` (scikit-dimension 0.5).

    Cost: O(n^2 d) time and O(chunk * n) memory (distances in row chunks of 1024), on the input's
    device in float64; ``max_samples`` caps n by a seeded random subsample (Pope et al. use 1000).
    ``details``: ``local`` (per-point m(x) for MLE, mu for TwoNN), ``n_used``, ``duplicates``.

    Args:
        method: 'mle' (Levina-Bickel with MacKay-Ghahramani averaging) or 'twonn'.
        k: neighbours for the MLE (default 20, as in Pope et al.); ignored by TwoNN.
        discard_fraction: share of the largest TwoNN ratios left out of the fit (default 0.1).
        max_samples: use at most this many rows, drawn at random (default None: all rows).
        seed: seed of that subsample (default 0).

    Citations: Levina and Bickel, "Maximum Likelihood Estimation of Intrinsic Dimension" (NeurIPS
    2004); Facco et al., "Estimating the intrinsic dimension of datasets by a minimal neighborhood
    information" (arXiv:1803.06992); Pope et al., "The Intrinsic Dimension of Images and Its
    Impact on Learning" (arXiv:2104.08894).
    """

    citation = (
        ("Maximum Likelihood Estimation of Intrinsic Dimension", "NeurIPS 2004"),
        (
            "Estimating the intrinsic dimension of datasets by a minimal neighborhood information",
            "arXiv:1803.06992",
        ),
        ("The Intrinsic Dimension of Images and Its Impact on Learning", "arXiv:2104.08894"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        method: str = "mle",
        k: int = 20,
        discard_fraction: float = 0.1,
        max_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        self.method = validate.choice("method", method, ("mle", "twonn"))
        self.k = validate.integer("k", k, low=2)
        self.discard_fraction = validate.number(
            "discard_fraction", discard_fraction, low=0, high=1, high_open=True
        )
        self.max_samples = validate.optional(validate.integer, "max_samples", max_samples, low=3)
        self.seed = validate.integer("seed", seed)
        self.units = "dimensions"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "intrinsic-dimension")
        z = as_matrix(x, "x", min_rows=3)
        if self.max_samples is not None and z.shape[0] > self.max_samples:
            g = torch.Generator().manual_seed(self.seed)
            pick = torch.randperm(z.shape[0], generator=g)[: self.max_samples].to(z.device)
            z = z[pick]
        n_in = z.shape[0]
        z = torch.unique(z, dim=0)
        n = z.shape[0]
        need = self.k + 1 if self.method == "mle" else 3
        if n < need:
            raise BadInputError(
                f"intrinsic-dimension ({self.method}) needs at least {need} distinct rows; got {n}"
            )
        z = z - z.mean(dim=0)
        if self.method == "mle":
            t = neighbour_distances(z, self.k)
            inv = torch.log(t[:, -1:] / t[:, :-1]).sum(dim=1) / (self.k - 1)
            mean_inv = float(inv.mean())
            if not mean_inv > 0:
                raise BadInputError("all neighbour distances are equal: the MLE is undefined")
            value = 1.0 / mean_inv
            local = 1.0 / inv
        else:
            t = neighbour_distances(z, 2)
            mu = torch.sort(t[:, 1] / t[:, 0]).values
            keep = int(n * (1 - self.discard_fraction))
            if keep < 2:
                raise BadInputError("fewer than 2 ratios are left for the TwoNN fit")
            lx = torch.log(mu[:keep])
            ly = -torch.log1p(-torch.arange(1, keep + 1, dtype=z.dtype, device=z.device) / n)
            denom = float(lx.square().sum())
            if not denom > 0:
                raise BadInputError("every point has r2 == r1: the TwoNN fit is undefined")
            value = float((lx * ly).sum()) / denom
            local = mu
        info = {"local": to_host(local), "n_used": n, "duplicates": n_in - n}
        return finish(value, info, details)
