"""Shared plumbing of the calibration metrics: inputs to (confidence, correctness), bins, tables.

The metrics (``ece``, ``brier-score``, ``ks-calibration-error``) and the temperature-scaling
calibrator all start from predictions ``x`` and integer ``targets``:

- ``x`` of shape (..., C), C >= 2: class probabilities, or logits with ``from_logits=True``;
- ``x`` of shape (...,): the probability (or logit) of the positive class of a binary problem.

Leading dimensions are flattened; targets equal to ``ignore_index`` are dropped. The (N, C)
matrix is never copied or upcast as a whole: probabilities are checked and reduced in place by
whole-tensor row reductions (each allocates only an (N,) result), and logits are upcast to
float64 one row chunk at a time for their log-sum-exp.

Bins are half-open ``(lo, hi]`` (Guo et al.; sklearn's ``calibration_curve``) with a confidence of
exactly 0 in the first bin, so no prediction is dropped. ``uniform`` bins split [0, 1] into equal
widths; ``quantile`` bins put (about) equal counts in each bin, their edges being the
confidences' percentiles (linear interpolation, as numpy and sklearn); ties may leave bins empty.
Empty bins are skipped in every sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError

from ._common import to_host

MODES = ("top-label", "binary", "classwise")
BINNINGS = ("uniform", "quantile")
NORMS = ("l1", "l2", "max")
WEIGHTINGS = ("count", "uniform")

#: rows per chunk when reducing an (N, C) input (bounded temporaries for large C)
_CHUNK_ELEMENTS = 1 << 22
_SUM_TOL = 1e-3  # |sum_c p_c - 1| allowed for probability rows (float16/bfloat16 inputs round)


@dataclass
class Predictions:
    """Validated, flattened predictions: a probability matrix source plus integer targets."""

    x: torch.Tensor
    """(N, C) probabilities or logits (input dtype, not copied), or (N,) binary scores."""
    targets: torch.Tensor
    """(N,) int64 class ids (ignored rows already dropped)."""
    from_logits: bool
    top: tuple[torch.Tensor, torch.Tensor] | None = None
    """Row max and argmax of a probability matrix, kept by the validation pass."""

    @property
    def binary(self) -> bool:
        return self.x.dim() == 1

    @property
    def num_classes(self) -> int:
        return 2 if self.binary else int(self.x.shape[1])

    def __len__(self) -> int:
        return int(self.targets.numel())


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if x is None:
        raise BadInputError(f"{name} is required")
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise BadInputError(f"{name} must be an array or tensor: {exc}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise BadInputError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _chunks(x: torch.Tensor) -> range:
    step = max(1, _CHUNK_ELEMENTS // max(1, int(x.shape[-1])))
    return range(0, int(x.shape[0]), step)


def predictions(
    x: Any, targets: Any, *, from_logits: bool, ignore_index: int | None, who: str
) -> Predictions:
    """Validate ``x`` and ``targets`` (see the module docstring) into :class:`Predictions`."""
    scores = _as_tensor(x, "predictions")
    if targets is None:
        raise BadInputError(f"{who} needs the true labels (targets) as the second input")
    y = _as_tensor(targets, "targets")
    if not scores.is_floating_point():
        scores = scores.to(torch.float64)
    if scores.is_complex() or y.is_complex():
        raise BadInputError(f"{who}: inputs must be real-valued")
    if y.is_floating_point() and not bool(torch.all(y == torch.round(y))):
        raise BadInputError(f"{who}: targets must be integer class ids, got fractional values")
    y = y.to(torch.int64)
    if scores.dim() == 0:
        raise BadInputError(f"{who}: predictions must have shape (..., C) or (N,), got a scalar")
    binary = tuple(scores.shape) == tuple(y.shape)
    if binary:
        scores = scores.reshape(-1)
    else:
        if tuple(scores.shape[:-1]) != tuple(y.shape):
            raise BadInputError(
                f"{who}: predictions of shape {tuple(scores.shape)} need targets of shape "
                f"{tuple(scores.shape[:-1])} (one per row) or, for a binary problem, predictions "
                f"and targets of the same shape; got targets of shape {tuple(y.shape)}"
            )
        if scores.shape[-1] < 2:
            raise BadInputError(
                f"{who}: predictions need at least 2 classes in the last dimension (a binary "
                f"problem can pass one probability per row as shape (N,)), got {tuple(scores.shape)}"
            )
        scores = scores.reshape(-1, scores.shape[-1])
    y = y.reshape(-1).to(scores.device)
    if ignore_index is not None:
        keep = y != ignore_index
        if not bool(keep.all()):
            scores, y = scores[keep], y[keep]
    if y.numel() == 0:
        raise BadInputError(f"{who}: no predictions to evaluate (empty, or every target ignored)")
    num_classes = 2 if binary else int(scores.shape[1])
    if bool(((y < 0) | (y >= num_classes)).any()):
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        raise BadInputError(
            f"{who}: target {bad} is out of range: class ids must lie in [0, {num_classes})"
            + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
        )
    top = _check_scores(scores, from_logits, who)
    return Predictions(scores, y, from_logits, top)


def _check_scores(
    scores: torch.Tensor, from_logits: bool, who: str
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Finite values; for probabilities also [0, 1] and rows summing to 1.

    Three whole-tensor row reductions (min, max with argmax, sum): they allocate only (N,)
    outputs, and a few large reductions beat many chunked ones on a busy CPU. For an (N, C)
    probability matrix the row max and argmax are returned for :func:`top_label`.
    """
    hint = "" if from_logits else " (pass from_logits=True for logits)"
    if scores.dim() == 1:
        lo, hi = torch.aminmax(scores)
        top = arg = None
    else:
        low = scores.amin(dim=1)
        top, arg = scores.max(dim=1)
        sums = None if from_logits else scores.sum(dim=1, dtype=_sum_dtype(scores))
        lo, hi = low.min(), top.max()
        if sums is not None:
            worst = float((sums - 1.0).abs().max())
            if worst > _SUM_TOL and bool(torch.isfinite(lo) & torch.isfinite(hi)):
                raise BadInputError(
                    f"{who}: probability rows must sum to 1, one is off by {worst:.3g}{hint}"
                )
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        raise BadInputError(f"{who}: predictions contain NaN or inf values")
    if not from_logits and (float(lo) < 0.0 or float(hi) > 1.0):
        raise BadInputError(
            f"{who}: probabilities must lie in [0, 1], got values in [{float(lo):.4g}, "
            f"{float(hi):.4g}]{hint}"
        )
    return None if (from_logits or top is None or arg is None) else (top, arg)


def _sum_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def positive_probability(pred: Predictions) -> np.ndarray:
    """(N,) float64 probability of the positive class of a binary problem."""
    x = pred.x
    if pred.binary:
        p = x.to(torch.float64)
        return to_host(torch.sigmoid(p) if pred.from_logits else p)
    if x.shape[1] != 2:
        raise BadInputError(
            f"mode='binary' needs one score per row (N,) or two classes (N, 2), got {x.shape[1]} "
            "classes; use mode='top-label' or 'classwise'"
        )
    return class_probabilities(pred)[:, 1]


def top_label(pred: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct): ``max_c p_c`` and ``1[argmax = y]``, both (N,) float64."""
    if pred.binary:
        p1 = positive_probability(pred)
        predicted = (p1 > 0.5).astype(np.int64)  # a tie at 0.5 predicts class 0, as argmax does
        conf = np.where(predicted == 1, p1, 1.0 - p1)
        return conf, (predicted == to_host(pred.targets)).astype(np.float64)
    x = pred.x
    if pred.top is not None:
        top, arg = pred.top
        correct = (arg == pred.targets).to(torch.float64)
        return to_host(top), to_host(correct)
    conf = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    arg = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    for start in _chunks(x):
        part = x[start : start + _chunks(x).step]
        top, idx = part.max(dim=1)  # exact in the input dtype
        if pred.from_logits:
            lse = torch.logsumexp(part.to(torch.float64), dim=1)
            conf[start : start + len(part)] = torch.exp(top.to(torch.float64) - lse)
        else:
            conf[start : start + len(part)] = top.to(torch.float64)
        arg[start : start + len(part)] = idx
    correct = (arg == pred.targets).to(torch.float64)
    return to_host(conf), to_host(correct)


def class_probabilities(pred: Predictions) -> np.ndarray:
    """(N, C) float64 probabilities (softmax of logits; (N,) binary scores become (N, 2))."""
    if pred.binary:
        p1 = positive_probability(pred)
        return np.stack([1.0 - p1, p1], axis=1)
    p = pred.x.to(torch.float64)
    return to_host(torch.softmax(p, dim=1) if pred.from_logits else p)


def brier_terms(pred: Predictions) -> np.ndarray:
    """(N,) ``sum_c (p_c - 1[y = c])^2`` per row, read in chunks (``sum p^2 - 2 p_y + 1``)."""
    if pred.binary:
        p = class_probabilities(pred)
        onehot = np.eye(2)[to_host(pred.targets).astype(np.int64)]
        return ((p - onehot) ** 2).sum(axis=1)
    x = pred.x
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for start in _chunks(x):
        part = x[start : start + _chunks(x).step].to(torch.float64)
        p = torch.softmax(part, dim=1) if pred.from_logits else part
        py = p.gather(1, pred.targets[start : start + len(part), None]).squeeze(1)
        out[start : start + len(part)] = (p * p).sum(dim=1) - 2.0 * py + 1.0
    return to_host(out).clip(min=0.0)


# ------------------------------------------------------------------------------ bins
@dataclass
class ReliabilityTable:
    """Per-bin counts, mean confidence and accuracy (NaN where a bin is empty)."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """|accuracy - confidence| per bin (NaN where empty)."""
        return np.abs(self.accuracy - self.confidence)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bin_edges": self.edges,
            "counts": self.counts,
            "mean_confidence": self.confidence,
            "accuracy": self.accuracy,
        }


def bin_edges(confidence: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """(n_bins + 1,) edges: equal widths over [0, 1], or the confidences' percentiles."""
    if binning == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    return np.percentile(confidence, np.linspace(0.0, 100.0, n_bins + 1))


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: str = "uniform"
) -> ReliabilityTable:
    """Bin ``confidence`` into ``(lo, hi]`` bins and average confidence and correctness per bin."""
    edges = bin_edges(confidence, n_bins, binning)
    idx = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return ReliabilityTable(edges, counts.astype(np.int64), conf, acc)


def calibration_error(table: ReliabilityTable, norm: str, weighting: str) -> float:
    """The l1 (ECE), l2 (RMS) or max (MCE) norm of the per-bin gaps over non-empty bins.

    ``weighting='count'`` weighs each bin by its share of the predictions (the usual ECE);
    ``'uniform'`` weighs every non-empty bin equally (with quantile bins: the "balanced" ECE).
    """
    full = table.counts > 0
    gaps = table.gaps[full]
    if norm == "max":
        return float(gaps.max())
    weights = table.counts[full] / table.counts.sum() if weighting == "count" else None
    if norm == "l1":
        return float(np.average(gaps, weights=weights))
    return float(np.sqrt(np.average(gaps**2, weights=weights)))


def confidences(pred: Predictions, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) for ``top-label`` or ``binary``; (N, C) pairs for ``classwise``."""
    if mode == "top-label":
        return top_label(pred)
    if mode == "binary":
        return positive_probability(pred), to_host(pred.targets).astype(np.float64)
    p = class_probabilities(pred)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), to_host(pred.targets).astype(np.int64)] = 1.0
    return p, onehot
