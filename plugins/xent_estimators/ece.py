"""Expected calibration error (ECE), its max (MCE) and RMS forms, with the reliability table."""

from __future__ import annotations

from typing import Any

import numpy as np

from xent_core import validate

from ._calibration import (
    BINNINGS,
    MODES,
    NORMS,
    WEIGHTINGS,
    calibration_error,
    confidences,
    predictions,
    reliability_table,
)
from ._common import finish


class ExpectedCalibrationError:
    """Expected calibration error: binned gap between confidence and accuracy (ECE, MCE, RMS).

    Each prediction has a confidence ``c_i`` and a correctness ``k_i``. Binning the confidences
    into bins ``B_b`` (half-open ``(lo, hi]``; c = 0 falls in the first bin),

        ECE = sum_b (|B_b| / N) |mean_{B_b} c - mean_{B_b} k|      (norm='l1')
        RMS = sqrt(sum_b (|B_b| / N) (mean_{B_b} c - mean_{B_b} k)^2)  (norm='l2')
        MCE = max_b |mean_{B_b} c - mean_{B_b} k|                  (norm='max')

    over the non-empty bins. ``weighting='uniform'`` replaces ``|B_b| / N`` by one over the number
    of non-empty bins: with ``binning='quantile'`` this is the "balanced" ECE of the Deep
    Probability Estimation code (sklearn ``calibration_curve`` bins, unweighted mean).

    Call ``est(x, targets)``: ``x`` (..., C) probabilities (or logits with ``from_logits=True``),
    or (...,) positive-class probabilities of a binary problem; ``targets`` integer class ids.
    Returns the error (a fraction in [0, 1]); ``details`` holds the reliability table
    (``bin_edges``, ``counts``, ``mean_confidence``, ``accuracy``; NaN for empty bins), ``n`` and
    the settings. In ``classwise`` mode the table arrays have one row per class and the value is
    the mean of the per-class errors (``details["per_class"]``).

    Args:
        n_bins: number of bins (15, Guo et al.; the CA paper's code prints with 25).
        binning: ``uniform`` (equal widths) or ``quantile`` (equal counts; ties can empty bins).
        norm: ``l1`` (ECE), ``l2`` (RMS calibration error) or ``max`` (MCE).
        weighting: ``count`` (bins weighted by their share of predictions) or ``uniform``.
        mode: ``top-label`` (c = max_c p_c, k = 1 if argmax = y), ``binary`` (c = p(y=1), k = y;
            (N,) or (N, 2) inputs) or ``classwise`` (binary ECE of every class, averaged).
        from_logits: the input holds logits (softmax, or sigmoid for (N,) inputs), not probabilities.
        ignore_index: targets equal to it are dropped (None: keep every row).

    Caveats: biased upward for small N per bin (a perfectly calibrated model has ECE > 0); the
    value depends on the bins, so compare models only at the same settings. Not differentiable:
    as a training signal use ``correctness-aware`` or a Brier loss.

    Citation: Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks",
    arXiv:1706.04599; balanced ECE: Liu et al., "Deep Probability Estimation", arXiv:2111.10734.
    """

    citation = (
        ("On Calibration of Modern Neural Networks", "arXiv:1706.04599"),
        ("Deep Probability Estimation", "arXiv:2111.10734"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        n_bins: int = 15,
        binning: str = "uniform",
        norm: str = "l1",
        weighting: str = "count",
        mode: str = "top-label",
        from_logits: bool = False,
        ignore_index: int | None = -100,
    ) -> None:
        self.n_bins = validate.integer("n_bins", n_bins, low=1)
        self.binning = validate.choice("binning", binning, BINNINGS)
        self.norm = validate.choice("norm", norm, NORMS)
        self.weighting = validate.choice("weighting", weighting, WEIGHTINGS)
        self.mode = validate.choice("mode", mode, MODES)
        self.from_logits = validate.flag("from_logits", from_logits)
        self.ignore_index = validate.optional(validate.integer, "ignore_index", ignore_index)
        self.units = "probability"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        pred = predictions(
            x, y, from_logits=self.from_logits, ignore_index=self.ignore_index, who="ece"
        )
        conf, correct = confidences(pred, self.mode)
        info: dict[str, Any] = {
            "n": len(pred),
            "n_bins": self.n_bins,
            "binning": self.binning,
            "norm": self.norm,
            "weighting": self.weighting,
            "mode": self.mode,
        }
        if self.mode != "classwise":
            table = reliability_table(conf, correct, self.n_bins, self.binning)
            value = calibration_error(table, self.norm, self.weighting)
            info.update(table.as_dict())
            info["accuracy_overall"] = float(correct.mean())
            info["confidence_overall"] = float(conf.mean())
            return finish(value, info, details)
        tables = [
            reliability_table(conf[:, c], correct[:, c], self.n_bins, self.binning)
            for c in range(conf.shape[1])
        ]
        per_class = np.array([calibration_error(t, self.norm, self.weighting) for t in tables])
        for key in ("bin_edges", "counts", "mean_confidence", "accuracy"):
            info[key] = np.stack([t.as_dict()[key] for t in tables])
        info["per_class"] = per_class
        return finish(float(per_class.mean()), info, details)
