"""torchmetrics ``Metric`` for any xent estimator, accumulated over batches and processes.

``xent_core.metric("rankme")`` gives a :class:`EstimatorMetric`; ``update`` on each batch,
``compute`` at the end of the epoch (states are synchronised across DDP processes first), and
``reset``. How a metric accumulates is declared by the estimator in its ``capabilities``
(``"accumulate"``), read from the component spec without importing the estimator:

- ``"gram"``: the uncentred Gram matrix ``Z^T Z`` (d x d), the column sums and the row count.
  At ``compute`` a small surrogate matrix with the same (centred or uncentred) second moments is
  handed to the estimator, so the value equals the estimator on all the rows (rankme, erank,
  alpha-req, matrix-entropy, gaussian-entropy). Not possible when rows are centred *and then*
  normalised to unit length (erank and matrix-entropy by default) or for gaussian-entropy's
  sample-size bias correction: those keep the rows.
- ``"sums"``: the sum and count of per-token values (token-entropy).
- ``"counts"``: the observed symbols and their frequencies (the discrete entropies).
- ``"rows"`` (the default for estimators that declare nothing): the inputs themselves, at most
  ``max_samples`` rows (the first ones seen); dse, knn-entropy, ksg-mi, vendi.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Any

import torch
from torchmetrics import Metric

import xent_core
from xent_core import BadInputError, BadParameterError, validate

MODES = ("gram", "sums", "counts", "rows")

__all__ = ["MODES", "EstimatorMetric", "accumulation", "metric"]


def accumulation(name: str, **params: Any) -> str:
    """How ``xent_core.metric(name, **params)`` accumulates: one of :data:`MODES`."""
    spec = xent_core.info(name, "estimator")
    mode = str(spec.capabilities.get("accumulate", "rows"))
    if mode not in MODES:
        raise BadParameterError(f"estimator {spec.name!r} declares unknown accumulate={mode!r}")
    if mode == "gram":
        center = params.get("center", _default(spec, "center", True))
        norm = params.get("normalize_rows", _default(spec, "normalize_rows", False))
        if (center and norm) or params.get("bias_correction", False):
            return "rows"
    return mode


def _default(spec: Any, name: str, fallback: Any) -> Any:
    for p in spec.params:
        if p.name == name:
            try:  # specs read from source carry the default as its source text
                return ast.literal_eval(p.default) if isinstance(p.default, str) else p.default
            except (ValueError, SyntaxError):
                return p.default
    return fallback


def metric(name: str, /, *, max_samples: int = 100_000, **params: Any) -> EstimatorMetric:
    """A torchmetrics ``Metric`` that accumulates the estimator ``name`` over batches."""
    return EstimatorMetric(name, max_samples=max_samples, **params)


def _matrix(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x).detach()
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim < 2:
        raise BadInputError(f"expected rows (n, d) or (..., d); got shape {tuple(t.shape)}")
    return t.reshape(-1, t.shape[-1]).to(torch.float64)


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


class EstimatorMetric(Metric):
    """A xent estimator as a torchmetrics ``Metric`` (update / compute / reset, DDP sync).

    Args:
        name: the estimator's name (``xent list estimator``).
        max_samples: in ``rows`` mode, the most rows kept per input (the first ones seen).
        **params: the estimator's parameters.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, name: str, /, *, max_samples: int = 100_000, **params: Any) -> None:
        super().__init__()
        self.max_samples = validate.integer("max_samples", max_samples, low=1)
        self.estimator = xent_core.estimator(name, **params)
        self.estimator_name = xent_core.info(name, "estimator").name
        self.mode = accumulation(name, **params)
        self._params = params
        self._warned = False
        if self.mode == "gram":
            self.center = bool(getattr(self.estimator, "center", True))
            self.normalize_rows = bool(getattr(self.estimator, "normalize_rows", False))
            # rows are normalised in update; the surrogate must not be normalised again
            extra = {"normalize_rows": False} if hasattr(self.estimator, "normalize_rows") else {}
            self._final = xent_core.estimator(name, **{**params, **extra})
            self.add_state(
                "gram", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(
                "colsum", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        elif self.mode == "sums":
            self.add_state(
                "total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(
                "count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
            )
        elif self.mode == "counts":
            if getattr(self.estimator, "input", "samples") != "samples":
                raise BadParameterError(f"xent_core.metric({name!r}) takes samples, not counts")
            self._final = xent_core.estimator(name, **{**params, "input": "counts"})
            self.add_state("symbols", default=[], dist_reduce_fx="cat")
            self.add_state("freqs", default=[], dist_reduce_fx="cat")
        else:
            self.add_state("xs", default=[], dist_reduce_fx="cat")
            self.add_state("ys", default=[], dist_reduce_fx="cat")

    def update(self, x: Any = None, y: Any = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Add a batch (the estimator's inputs: rows, samples, logits or hidden + classifier)."""
        if self.mode == "sums":
            self._update_sums(x, y, **kwargs)
            return
        if kwargs:
            raise BadInputError(f"{self.estimator_name} metric takes x (and y), not {list(kwargs)}")
        if x is None:
            raise BadInputError("update needs the batch x")
        if self.mode == "gram":
            if y is not None:
                raise BadInputError(f"{self.estimator_name} takes one input")
            self._update_gram(_matrix(x))
        elif self.mode == "counts":
            if y is not None:
                raise BadInputError(f"{self.estimator_name} takes one input")
            s = torch.as_tensor(x).detach()
            if s.ndim not in (1, 2) or s.shape[0] == 0:
                raise BadInputError(f"samples must be (n,) or (n, k), got {tuple(s.shape)}")
            sym, freq = torch.unique(s, dim=0, return_counts=True)
            self.symbols.append(sym)
            self.freqs.append(freq.to(torch.float64))
        else:
            self._update_rows(x, y)

    def _update_gram(self, z: torch.Tensor) -> None:
        if self.normalize_rows:  # only reached uncentred: each row is normalised on its own
            norms = z.norm(dim=1, keepdim=True)
            if bool((norms == 0).any()):
                raise BadInputError("zero rows cannot be normalised to unit length")
            z = z / norms
        z = z.to(self.n.device)
        if self.gram.numel() == 0:
            d = z.shape[1]
            self.gram = torch.zeros(d, d, dtype=torch.float64, device=z.device)
            self.colsum = torch.zeros(d, dtype=torch.float64, device=z.device)
        elif z.shape[1] != self.gram.shape[0]:
            raise BadInputError(f"rows have {z.shape[1]} columns, earlier batches {len(self.gram)}")
        self.gram += z.T @ z
        self.colsum += z.sum(dim=0)
        self.n += z.shape[0]

    def _update_sums(self, x: Any, y: Any, *, mask: Any = None, **kwargs: Any) -> None:
        per_token = self.estimator.per_token  # type: ignore[attr-defined]
        h, _ = per_token(x, y, **kwargs)
        if mask is not None:
            h = h[torch.as_tensor(mask, dtype=torch.bool, device=h.device)]
        self.total += h.detach().double().sum().to(self.total.device)
        self.count += h.numel()

    def _update_rows(self, x: Any, y: Any) -> None:
        kept = sum(len(t) for t in self.xs)
        room = self.max_samples - kept
        xt = torch.as_tensor(x).detach()
        if room < len(xt) and not self._warned:
            warnings.warn(
                f"{self.estimator_name} metric keeps its rows; only the first "
                f"{self.max_samples} are used (max_samples)",
                stacklevel=3,
            )
            self._warned = True
        if room <= 0:
            return
        self.xs.append(xt[:room])
        if y is not None:
            self.ys.append(torch.as_tensor(y).detach()[:room])

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        """The estimate over every row seen since the last ``reset`` (all processes)."""
        if self.mode == "sums":
            if float(self.count) == 0:
                raise BadInputError("no tokens seen: call update before compute")
            return self.total / self.count
        if self.mode == "gram":
            value = self._final(self._surrogate())
        elif self.mode == "counts":
            value = self._final(self._merged_counts())
        else:
            xs = _cat(self.xs)[: self.max_samples]
            ys = _cat(self.ys)[: self.max_samples] if _nonempty(self.ys) else None
            value = self.estimator(xs) if ys is None else self.estimator(xs, ys)
        return torch.as_tensor(value, dtype=torch.float64)

    def _surrogate(self) -> torch.Tensor:
        """A matrix whose second moments (as the estimator reads them) equal the rows' own."""
        n = float(self.n)
        if n == 0:
            raise BadInputError("no rows seen: call update before compute")
        d = self.gram.shape[0]
        if not self.center:
            return _sqrt_psd(self.gram)
        if self.estimator_name == "gaussian-entropy" and n <= d:
            raise BadInputError(
                f"gaussian-entropy needs more samples than dimensions (n > d); got n={int(n)}, d={d}"
            )
        if n < 2:
            raise BadInputError("a centred estimator needs at least 2 rows")
        cov = self.gram - torch.outer(self.colsum, self.colsum) / n
        m = _sqrt_psd(cov)
        # 2d zero-mean rows whose sample covariance (divided by 2d - 1) is cov / (n - 1)
        return torch.cat([m, -m]) * math.sqrt((2 * d - 1) / (2 * (n - 1)))

    def _merged_counts(self) -> torch.Tensor:
        if not _nonempty(self.symbols):
            raise BadInputError("no samples seen: call update before compute")
        sym, freq = _cat(self.symbols), _cat(self.freqs)
        _, inverse = torch.unique(sym, dim=0, return_inverse=True)
        merged = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64, device=freq.device)
        return merged.index_add_(0, inverse, freq)


def _nonempty(state: Any) -> bool:
    return (isinstance(state, torch.Tensor) and state.numel() > 0) or (
        isinstance(state, list) and len(state) > 0
    )


def _cat(state: Any) -> torch.Tensor:
    return state if isinstance(state, torch.Tensor) else torch.cat(state)
