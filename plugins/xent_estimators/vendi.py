"""Vendi score of order q: the effective number of distinct samples."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError

from ._common import (
    as_matrix,
    check_choice,
    check_flag,
    finish,
    no_second_input,
    preprocess_rows,
    to_host,
)

#: eigenvalues at or below this fraction of the largest are treated as 0 (see :class:`Vendi`)
EIGENVALUE_CUTOFF = 1e-12


def parse_order(q: Any) -> float:
    """The order ``q >= 0`` as a float (``"inf"`` accepted)."""
    if isinstance(q, str) and q.strip().lower() in ("inf", "+inf", "infinity"):
        return math.inf
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise BadParameterError(f"q must be a number >= 0 or 'inf', got {q!r}")
    value = float(q)
    if math.isnan(value) or value < 0:
        raise BadParameterError(f"q must be a number >= 0 or 'inf', got {q!r}")
    return value


def renyi_entropy(p: torch.Tensor, q: float) -> float:
    """Renyi entropy of order ``q`` (nats) of a probability vector ``p`` (zeros allowed)."""
    if q == 1.0:
        return float(-torch.special.xlogy(p, p).sum())
    if math.isinf(q):
        return -math.log(float(p.max()))
    support = p[p > p.max() * EIGENVALUE_CUTOFF]  # round-off "zeros" would count for q < 1
    if q == 0.0:
        return math.log(support.numel())
    # log sum p^q in log space: p^q underflows to 0 for large q (q = 500 with p <= 0.2)
    return float(torch.logsumexp(q * support.log(), dim=0)) / (1.0 - q)


def similarity_spectrum(
    x: torch.Tensor, *, kind: str, normalize: bool, method: str = "auto"
) -> tuple[torch.Tensor, str]:
    """Eigenvalues of ``K / n`` (clamped at 0, normalised to sum 1) and the path used."""
    n = x.shape[0]
    if kind == "kernel":
        if x.shape[0] != x.shape[1]:
            raise BadInputError(f"a kernel must be square (n, n); got shape {tuple(x.shape)}")
        scale = float(x.abs().max())
        if not torch.allclose(x, x.T, rtol=0.0, atol=1e-9 * max(scale, 1.0)):
            raise BadInputError("the kernel matrix is not symmetric")
        diag = x.diagonal()
        if not torch.allclose(diag, torch.ones_like(diag), rtol=0.0, atol=1e-6):
            raise BadInputError(
                "the kernel must have a unit diagonal (k(x, x) = 1); got diagonal values in "
                f"[{float(diag.min()):.4g}, {float(diag.max()):.4g}]; rescale it as "
                "K_ij / sqrt(K_ii K_jj) first"
            )
        ev = torch.linalg.eigvalsh(x / n)
        path = "kernel"
    else:
        z = preprocess_rows(x, center=False, normalize_rows=normalize)
        d = z.shape[1]
        use_dual = d < n if method == "auto" else method == "dual"
        if use_dual:
            ev = torch.linalg.eigvalsh(z.T @ z / n)
            path = "dual (d x d)"
        else:
            ev = torch.linalg.eigvalsh(z @ z.T / n)
            path = "gram (n x n)"
    ev = ev.clamp_min(0)
    total = ev.sum()
    if not bool(total > 0):
        raise BadInputError("the similarity matrix is zero")
    return ev / total, path


class Vendi:
    """Vendi score of order q: exp of the Renyi entropy of the similarity-matrix eigenvalues.

    For ``n`` samples with a positive semi-definite similarity ``K`` (``K_ii = 1``) and the
    eigenvalues ``l_i`` of ``K / n`` (they sum to 1),

        VS_q = exp( log(sum_i l_i^q) / (1 - q) ),     VS_1 = exp(-sum_i l_i log l_i),

    ``VS_inf = 1 / max_i l_i``, ``VS_0`` = the number of non-zero eigenvalues. It is the effective
    number of distinct samples: ``n`` for ``K = I``, 1 for ``K`` all ones; non-increasing in ``q``.

    ``input="embeddings"`` (default): ``x`` (n, d) rows are samples, ``K = X X^T`` after scaling
    each row to unit norm (cosine similarity; ``normalize=False`` keeps the rows as given). When
    ``d < n`` the non-zero eigenvalues are taken from the ``d x d`` matrix ``X^T X / n`` (the dual),
    ``O(n d^2 + d^3)`` instead of ``O(n^2 d + n^3)``. ``input="kernel"``: ``x`` is ``K`` itself,
    symmetric with a unit diagonal. Dimensionless (an effective count).

    Eigenvalue cut-off: for finite ``q != 1``, eigenvalues at or below ``1e-12`` times the largest
    are treated as 0. Round-off leaves eigenvalues of order ``1e-16`` where the exact ones are 0,
    and for ``q < 1`` each would add ``l^q`` to the sum (``VS_0`` would count every one); a true
    eigenvalue below the cut-off is dropped too, so the cut-off decides ``q < 1`` values on such
    spectra. For ``q > 1`` the dropped terms are negligible; ``q = 1`` and ``q = inf`` use every
    eigenvalue.

    Args:
        q: order (default 1; ``float("inf")`` or ``"inf"`` allowed; must be >= 0).
        input: ``"embeddings"`` or ``"kernel"``.
        normalize: cosine-normalise embedding rows (default True; embeddings only).
        method: ``"auto"`` (dual when d < n), ``"dual"`` or ``"gram"`` (embeddings only).

    Citations: Friedman and Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
    Learning", arXiv:2210.02410; Pasarkar and Dieng, "Cousins of the Vendi Score: A Family of
    Similarity-Based Diversity Metrics For Science And Machine Learning", arXiv:2310.12952.
    """

    citation = (
        ("The Vendi Score: A Diversity Evaluation Metric for Machine Learning", "arXiv:2210.02410"),
        (
            "Cousins of the Vendi Score: A Family of Similarity-Based Diversity Metrics For "
            "Science And Machine Learning",
            "arXiv:2310.12952",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "rows"}

    def __init__(
        self,
        q: float = 1.0,
        input: str = "embeddings",
        normalize: bool = True,
        method: str = "auto",
    ) -> None:
        self.q = parse_order(q)
        self.input = check_choice(input, "input", ("embeddings", "kernel"))
        self.normalize = check_flag(normalize, "normalize")
        self.method = check_choice(method, "method", ("auto", "dual", "gram"))
        self.units = "effective samples"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "vendi")
        m = as_matrix(x, "x", min_rows=1)
        p, path = similarity_spectrum(
            m, kind=self.input, normalize=self.normalize, method=self.method
        )
        h = renyi_entropy(p, self.q)
        value = math.exp(h)
        info = {"eigenvalues": to_host(p.flip(0)), "entropy": h, "path": path, "q": self.q}
        return finish(value, info, details)
