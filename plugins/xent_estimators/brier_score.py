"""Brier score (multiclass, binary, top-label), with the reliability table in the details."""

from __future__ import annotations

from typing import Any

import numpy as np

from xent_core import validate

from ._calibration import confidences, predictions, reliability_table
from ._common import finish

_MODES = ("multiclass", "binary", "top-label")


class BrierScore:
    """Brier score: mean squared error of predicted probabilities against the one-hot truth.

        multiclass:  BS = (1/N) sum_i sum_c (p_ic - 1[y_i = c])^2      (in [0, 2])
        binary:      BS = (1/N) sum_i (p_i - y_i)^2                    (in [0, 1])
        top-label:   BS = (1/N) sum_i (c_i - k_i)^2, c = max_c p, k = 1[argmax = y]

    A strictly proper score: lower is better, and it rewards both calibration and sharpness.
    The binary form equals sklearn's ``brier_score_loss``; the multiclass form is twice the binary
    one on a two-class problem.

    Call ``est(x, targets)``: ``x`` (..., C) probabilities (or logits with ``from_logits=True``),
    or (...,) positive-class probabilities of a binary problem; ``targets`` integer class ids.
    ``details`` holds ``n``, the per-row ``per_item`` values and a top-label (binary mode:
    positive-class) reliability table (``bin_edges``, ``counts``, ``mean_confidence``,
    ``accuracy``) with ``n_bins`` uniform bins.

    Registered as ``brier-score`` because the example third-party plugin registers a *loss*
    named ``brier``: a second ``brier`` would make ``xent info brier`` ambiguous.

    Args:
        mode: ``multiclass`` (default), ``binary`` ((N,) or (N, 2) inputs) or ``top-label``.
        from_logits: the input holds logits (softmax, or sigmoid for (N,) inputs).
        n_bins: uniform bins of the reliability table in ``details`` (does not change the value).
        ignore_index: targets equal to it are dropped (None: keep every row).

    Citation: Brier, "Verification of Forecasts Expressed in Terms of Probability", Monthly
    Weather Review 78 (1950); used with ECE in Liu et al., "Optimizing Calibration by Gaining
    Aware of Prediction Correctness", arXiv:2404.13016.
    """

    citation = (
        (
            "Verification of Forecasts Expressed in Terms of Probability",
            "Monthly Weather Review 78",
        ),
        ("Optimizing Calibration by Gaining Aware of Prediction Correctness", "arXiv:2404.13016"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        mode: str = "multiclass",
        from_logits: bool = False,
        n_bins: int = 15,
        ignore_index: int | None = -100,
    ) -> None:
        self.mode = validate.choice("mode", mode, _MODES)
        self.from_logits = validate.flag("from_logits", from_logits)
        self.n_bins = validate.integer("n_bins", n_bins, low=1)
        self.ignore_index = validate.optional(validate.integer, "ignore_index", ignore_index)
        self.units = "squared probability"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        from ._calibration import brier_terms

        pred = predictions(
            x, y, from_logits=self.from_logits, ignore_index=self.ignore_index, who="brier-score"
        )
        table_mode = "binary" if self.mode == "binary" else "top-label"
        conf, correct = confidences(pred, table_mode)
        if self.mode == "multiclass":
            per_item = brier_terms(pred)
        else:
            per_item = (conf - correct) ** 2
        info: dict[str, Any] = {"n": len(pred), "mode": self.mode, "per_item": per_item}
        info.update(reliability_table(conf, correct, self.n_bins).as_dict())
        return finish(float(np.mean(per_item)), info, details)
