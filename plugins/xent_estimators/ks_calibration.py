"""Kolmogorov-Smirnov calibration error: a bin-free calibration measure."""

from __future__ import annotations

from typing import Any

import numpy as np

from xent_core import validate

from ._calibration import confidences, predictions, reliability_table
from ._common import finish

_MODES = ("top-label", "binary", "classwise")


def ks_error(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(KS, sorted confidence, cumulative gap)`` of one (confidence, correctness) sample."""
    order = np.argsort(confidence, kind="stable")
    c, k = confidence[order], correct[order]
    gap = np.cumsum(c - k) / len(c)
    return float(np.abs(gap).max()), c, gap


class KSCalibrationError:
    """KS calibration error: largest gap between cumulative confidence and cumulative accuracy.

    Sort the predictions by confidence ``c`` (with correctness ``k``); then

        KS = max_i |(1/N) sum_{j <= i} c_j - (1/N) sum_{j <= i} k_j|,

    the Kolmogorov-Smirnov distance between the two cumulative curves. Unlike ECE it needs no
    bins, so it has no binning bias and no bin-count setting.

    Call ``est(x, targets)``: ``x`` (..., C) probabilities (or logits with ``from_logits=True``),
    or (...,) positive-class probabilities of a binary problem; ``targets`` integer class ids.
    ``details`` holds ``n``, the curve (``sorted_confidence``, ``cumulative_gap``; top-label and
    binary modes) and a reliability table (``bin_edges``, ``counts``, ``mean_confidence``,
    ``accuracy``) with ``n_bins`` uniform bins for plotting; classwise mode gives ``per_class``.

    Args:
        mode: ``top-label`` (c = max_c p_c, k = 1 if argmax = y), ``binary`` (c = p(y=1), k = y)
            or ``classwise`` (mean over classes of the binary KS of each class).
        from_logits: the input holds logits (softmax, or sigmoid for (N,) inputs).
        n_bins: uniform bins of the reliability table in ``details`` (does not change the value).
        ignore_index: targets equal to it are dropped (None: keep every row).

    Citation: Gupta, Rahimi, Ajanthan, Mensink, Sminchisescu, Hartley, "Calibration of Neural
    Networks using Splines", arXiv:2006.12800.
    """

    citation = ("Calibration of Neural Networks using Splines", "arXiv:2006.12800")
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        mode: str = "top-label",
        from_logits: bool = False,
        n_bins: int = 15,
        ignore_index: int | None = -100,
    ) -> None:
        self.mode = validate.choice("mode", mode, _MODES)
        self.from_logits = validate.flag("from_logits", from_logits)
        self.n_bins = validate.integer("n_bins", n_bins, low=1)
        self.ignore_index = validate.optional(validate.integer, "ignore_index", ignore_index)
        self.units = "probability"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        pred = predictions(
            x,
            y,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            who="ks-calibration-error",
        )
        conf, correct = confidences(pred, self.mode)
        info: dict[str, Any] = {"n": len(pred), "mode": self.mode}
        if self.mode == "classwise":
            per_class = np.array(
                [ks_error(conf[:, c], correct[:, c])[0] for c in range(conf.shape[1])]
            )
            info["per_class"] = per_class
            return finish(float(per_class.mean()), info, details)
        value, curve_c, gap = ks_error(conf, correct)
        if details:  # the curve and the plotting table only when asked for
            info["sorted_confidence"] = curve_c
            info["cumulative_gap"] = gap
            info.update(reliability_table(conf, correct, self.n_bins).as_dict())
        return finish(value, info, details)
