"""compressed-mi: mutual information estimated after lossy compression (PCA) of both variables."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from xent_core import BadInputError, BadParameterError, validate

from ._common import as_matrix, finish, log_base, to_numpy, unit_name
from .knn_entropy import KnnEntropy
from .ksg_mi import KsgMutualInformation, _standardize

ESTIMATORS = ("ksg", "kl")


def pca(z: np.ndarray, dim: int | None) -> tuple[np.ndarray, float]:
    """``z`` projected on its ``dim`` leading principal axes, and the variance share kept."""
    centred = z - z.mean(axis=0)
    if dim is None or dim >= z.shape[1]:
        return centred, 1.0
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float(np.square(s).sum())
    kept = float(np.square(s[:dim]).sum()) / total if total > 0 else 1.0
    return centred @ vt[:dim].T, kept


class CompressedMutualInformation:
    """compressed-mi: I(X; Y) after compressing X and Y to a few dimensions (nats).

    Both variables are compressed (``compressor='pca'``: projection on the ``dim_x`` /
    ``dim_y`` leading principal axes; or a callable ``f(array) -> array``), optionally blurred
    with Gaussian noise of ``noise_std`` times each compressed coordinate's standard deviation
    (Goldfeld's stochastic-network view; seeded by ``seed``), then estimated in the small space:

        ksg: Kraskov-Stoegbauer-Grassberger estimator 1 (the ``ksg-mi`` estimator),
        kl:  H(X~) + H(Y~) - H(X~, Y~) with Kozachenko-Leonenko entropies (``knn-entropy``),

    on standardised columns. With class labels as ``y`` (1-D integers) it is
    ``H(X~) - sum_c p(c) H(X~ | Y = c)`` (KL entropies; every class needs more than ``k``
    samples). MI is invariant only under injective maps: compression to fewer dimensions than
    the information occupies (or noise) loses information, so the value is then an estimate of
    a lower bound; ``details['variance_kept_x']`` says how much PCA variance was kept.

    Call ``est(x, y)`` with ``x`` (n, dx) and ``y`` (n, dy) or labels (n,). Cost: an SVD of each
    variable (O(n d^2)) plus the kNN estimator, O(n log n) in the compressed space. CPU.

    Args:
        compressor: 'pca' or a callable mapping an (n, d) array to an (n, m) array.
        dim_x: PCA dimension for x (None: keep all).
        dim_y: PCA dimension for continuous y (None: keep all).
        mi_estimator: 'ksg' (default) or 'kl'.
        k: neighbour order of the kNN estimators.
        noise_std: relative std of Gaussian noise added after compression (0: none).
        seed: seed of that noise.
        base: logarithm base (default e: nats).

    Citation: Butakov, Tolmachev, Malanchuk, Neopryatnaya, Frolov, Andreev, "Information
    Bottleneck Analysis of Deep Neural Networks via Lossy Compression" (arXiv:2305.08013).
    """

    citation = (
        "Information Bottleneck Analysis of Deep Neural Networks via Lossy Compression",
        "arXiv:2305.08013",
    )
    capabilities = {"devices": ("cpu",)}

    def __init__(
        self,
        compressor: str | Callable[[np.ndarray], Any] = "pca",
        dim_x: int | None = None,
        dim_y: int | None = None,
        mi_estimator: str = "ksg",
        k: int = 3,
        noise_std: float = 0.0,
        seed: int = 0,
        base: float = math.e,
    ) -> None:
        if not (compressor == "pca" if isinstance(compressor, str) else callable(compressor)):
            raise BadParameterError(f"compressor must be 'pca' or a callable; got {compressor!r}")
        self.compressor = compressor
        self.dim_x = validate.optional(validate.integer, "dim_x", dim_x, low=1)
        self.dim_y = validate.optional(validate.integer, "dim_y", dim_y, low=1)
        self.mi_estimator = validate.choice("mi_estimator", mi_estimator, ESTIMATORS)
        self.k = validate.integer("k", k, low=1)
        self.noise_std = validate.nonnegative("noise_std", noise_std)
        self.seed = validate.integer("seed", seed)
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def _compress(self, z: np.ndarray, dim: int | None, name: str) -> tuple[np.ndarray, float]:
        if self.compressor == "pca":
            out, kept = pca(z, dim)
        else:
            assert callable(self.compressor)
            out = as_matrix(self.compressor(z), f"compressor({name})", backend="numpy")
            if out.shape[0] != z.shape[0]:
                raise BadInputError(f"compressor({name}) must keep the {z.shape[0]} rows")
            kept = math.nan
        return out, kept

    def _blur(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.noise_std == 0:
            return z
        return z + rng.normal(size=z.shape) * (self.noise_std * z.std(axis=0))

    def _entropy(self, z: np.ndarray) -> float:
        return float(KnnEntropy(k=self.k)(z))

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("compressed-mi needs two inputs: x (n, dx) and y (n, dy) or labels")
        a = as_matrix(x, "x", min_rows=self.k + 1, allow_vector=True, backend="numpy")
        raw = to_numpy(y, "y", dtype=None)
        labels = raw.ndim == 1 and raw.dtype.kind in "biu"
        if labels:
            b = raw.astype(np.int64)
        else:
            b = as_matrix(y, "y", min_rows=self.k + 1, allow_vector=True, backend="numpy")
        if b.shape[0] != a.shape[0]:
            raise BadInputError(
                f"x and y must have the same number of rows (paired); got {a.shape[0]} and "
                f"{b.shape[0]}"
            )
        rng = np.random.default_rng(self.seed)
        cx, kept_x = self._compress(a, self.dim_x, "x")
        cx = _standardize(self._blur(cx, rng))
        info: dict[str, Any] = {"dim_x": cx.shape[1], "variance_kept_x": kept_x}
        if labels:
            mi = self._with_labels(cx, b, info)
        else:
            cy, kept_y = self._compress(b, self.dim_y, "y")
            cy = _standardize(self._blur(cy, rng))
            info.update(dim_y=cy.shape[1], variance_kept_y=kept_y)
            if self.mi_estimator == "ksg":
                mi = float(KsgMutualInformation(k=self.k, standardize=False)(cx, cy))
            else:
                joint = np.hstack([cx, cy])
                mi = self._entropy(cx) + self._entropy(cy) - self._entropy(joint)
        info.update(n=a.shape[0], k=self.k, mi_estimator=self.mi_estimator, units=self.units)
        return finish(mi / self._log_base, info, details)

    def _with_labels(self, cx: np.ndarray, labels: np.ndarray, info: dict[str, Any]) -> float:
        classes, counts = np.unique(labels, return_counts=True)
        if bool((counts <= self.k).any()):
            small = classes[counts <= self.k].tolist()
            raise BadInputError(
                f"every class needs more than k={self.k} samples; classes {small} have fewer"
            )
        conditional = sum(
            (c / len(labels)) * self._entropy(cx[labels == cls])
            for cls, c in zip(classes, counts, strict=True)
        )
        info["classes"] = len(classes)
        return self._entropy(cx) - conditional
