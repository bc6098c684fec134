"""Diffusion spectral mutual information (DSMI) between a point cloud and a reference variable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, validate

from ._common import (
    as_matrix,
    check_choice,
    check_finite,
    check_flag,
    check_positive_int,
    finish,
    log_base,
    unit_name,
)
from .dse import check_bandwidth, dse_of


def reference_groups(
    y: Any, n: int, *, kind: str = "auto", n_clusters: int = 10, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Integer group ids (n,) from labels, a scalar reference or a vector reference.

    ``kind="auto"``: integer, boolean or string labels, and floats that are all whole numbers,
    are labels; other 1-D floats are a scalar reference (split into ``n_clusters`` quantile
    bins); 2-D floats are a vector reference (k-means with ``n_clusters`` centres).
    """
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
        if y.dtype in (torch.float16, torch.bfloat16):
            y = y.float()
        y = y.numpy()
    if y is None:
        raise BadInputError("dsmi needs a second input y (labels or a reference)")
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"y must form a rectangular array: {exc}") from exc
    if arr.ndim == 0 or arr.shape[0] != n:
        raise BadInputError(
            f"y must have one entry per sample: x has {n} rows, y has shape {tuple(arr.shape)}"
        )
    if arr.ndim > 2:
        raise BadInputError(f"y must be (n,) labels/values or (n, k) vectors; got {arr.shape}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    numeric = arr.dtype.kind in "biuf"
    if kind == "auto":
        if arr.ndim == 1 and (
            not numeric
            or arr.dtype.kind in "biu"
            or (np.isfinite(arr).all() and np.all(np.mod(arr, 1) == 0))
        ):
            kind = "labels"
        else:
            kind = "scalar" if arr.ndim == 1 else "vector"
    if kind == "labels":
        if arr.ndim != 1:
            raise BadInputError(f"labels must be 1-D, got shape {arr.shape}")
        if numeric:
            check_finite(arr.astype(np.float64), "y")
        _, ids = np.unique(arr, return_inverse=True)
        return ids.reshape(-1), kind
    if not numeric:
        raise BadInputError(f"a {kind} reference must be numeric, got dtype {arr.dtype}")
    ref = arr.astype(np.float64)
    check_finite(ref, "y")
    k = min(n_clusters, n)
    if kind == "scalar":
        if ref.ndim != 1:
            raise BadInputError(f"a scalar reference must be 1-D, got shape {ref.shape}")
        order = np.argsort(ref, kind="stable")
        ids = np.empty(n, dtype=np.int64)
        ids[order] = np.arange(n) * k // n  # equal-size quantile bins
        return ids, kind
    if ref.ndim != 2:
        raise BadInputError(f"a vector reference must be 2-D (n, k), got shape {ref.shape}")
    from scipy.cluster.vq import kmeans2

    scale = ref.std(axis=0)
    scale[scale == 0] = 1.0
    _, ids = kmeans2(ref / scale, k, minit="++", seed=seed)
    _, ids = np.unique(ids, return_inverse=True)
    return ids.reshape(-1), kind


class DiffusionSpectralMutualInformation:
    """Diffusion spectral mutual information (DSMI) between representations and a reference (bits).

    ``x`` (n, d) are representations, ``y`` a reference per row: class labels, a scalar, or a
    vector (scalars are split into ``n_clusters`` quantile bins, vectors clustered by k-means into
    ``n_clusters`` groups). With ``S_D`` the diffusion spectral entropy (see ``dse``),

        DSMI(X; Y) = sum_y p(y) [ S_D(X_{n_y}) - S_D(X | Y = y) ],

    where ``X | Y = y`` are the ``n_y`` rows of group ``y`` and ``X_{n_y}`` is a random subset of
    all rows of the same size ``n_y`` (sample-size-matched conditioning, as in the paper: DSE
    grows with the number of points, so both terms are computed at equal ``n``). With
    ``matched=False`` the first term is ``S_D`` of all rows instead. The subsets are averaged
    over ``repeats`` draws.

    Args:
        sigma: kernel bandwidth in the units of ``x`` (as for ``dse``).
        t: diffusion time (as for ``dse``).
        anisotropy: Coifman-Lafon density normalisation exponent in [0, 1] (as for ``dse``).
        base: logarithm base of the result (default 2: bits).
        n_clusters: quantile bins of a scalar ``y`` or k-means groups of a vector ``y``.
        y_kind: ``"auto"``, ``"labels"``, ``"scalar"`` or ``"vector"``.
        matched: compare each group with a random subset of the same size (the paper's choice).
        repeats: draws of the random subsets, averaged.
        seed: seed of the subsets and of k-means.
        precision: ``"float64"`` or ``"float32"`` (as for ``dse``).

    Caveats: an estimate, not a bound; it can be slightly negative for independent variables;
    depends on sigma and on the group sizes. Memory is ``O(max group size^2)``.

    Citation: Liao, Liu et al., "Assessing Neural Network Representations During Training Using
    Noise-Resilient Diffusion Spectral Entropy", arXiv:2312.04823.
    """

    citation = (
        "Assessing Neural Network Representations During Training Using Noise-Resilient "
        "Diffusion Spectral Entropy",
        "arXiv:2312.04823",
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        sigma: float = 10.0,
        t: float = 1.0,
        anisotropy: float = 0.0,
        base: float = 2.0,
        n_clusters: int = 10,
        y_kind: str = "auto",
        matched: bool = True,
        repeats: int = 1,
        seed: int = 0,
        precision: str = "float64",
    ) -> None:
        self.sigma, self.t, self.anisotropy = check_bandwidth(sigma, t, anisotropy)
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)
        self.n_clusters = check_positive_int(n_clusters, "n_clusters", 1)
        self.y_kind = check_choice(y_kind, "y_kind", ("auto", "labels", "scalar", "vector"))
        self.matched = check_flag(matched, "matched")
        self.repeats = check_positive_int(repeats, "repeats", 1)
        self.seed = validate.integer("seed", seed)
        self.precision = check_choice(precision, "precision", ("float64", "float32"))

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("dsmi needs a reference y (labels, a scalar or a vector per row)")
        m = as_matrix(x, "x", min_rows=2)
        n = m.shape[0]
        groups, kind = reference_groups(
            y, n, kind=self.y_kind, n_clusters=self.n_clusters, seed=self.seed
        )
        if kind == "labels" and self.y_kind == "auto" and len(np.unique(groups)) > n // 2:
            # Almost one label per point leaves nothing to condition on: say so instead of 0.
            raise BadInputError(
                f"y has {len(np.unique(groups))} distinct labels for {n} samples; pass "
                "y_kind='scalar' or 'vector' to cluster a continuous reference"
            )
        gen = torch.Generator().manual_seed(self.seed)
        ids, counts = np.unique(groups, return_counts=True)
        run = dict(sigma=self.sigma, t=self.t, anisotropy=self.anisotropy, precision=self.precision)
        h_all = dse_of(m, **run) if not self.matched else None
        terms = []
        for gid, cnt in zip(ids, counts):
            rows = torch.from_numpy(np.flatnonzero(groups == gid)).to(m.device)
            h_cond = dse_of(m[rows], **run)
            if self.matched:
                h_x = 0.0
                for _ in range(self.repeats):
                    sub = torch.randperm(n, generator=gen)[: int(cnt)].to(m.device)
                    h_x += dse_of(m[sub], **run)
                h_x /= self.repeats
            else:
                h_x = float(h_all)  # type: ignore[arg-type]
            terms.append((int(cnt) / n, h_x, h_cond))
        value = sum(p * (hx - hc) for p, hx, hc in terms) / self._log_base
        info = {
            "groups": len(ids),
            "group_sizes": counts.tolist(),
            "reference": kind,
            "entropy_x": sum(p * hx for p, hx, _ in terms) / self._log_base,
            "conditional_entropy": sum(p * hc for p, _, hc in terms) / self._log_base,
            "units": self.units,
        }
        if not math.isfinite(value):
            raise BadInputError("DSMI is not finite; check the inputs")
        return finish(value, info, details)
