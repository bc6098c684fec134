"""Scores of a predicted loss curve (R^2, MAE, RMSE, PredE, WorstE) and their mean over curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def curve_metrics(loss: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2, MAE, RMSE, PredE (mean relative error) and WorstE (max relative error) of one curve."""
    loss = np.asarray(loss, dtype=np.float64)
    err = np.asarray(pred, dtype=np.float64) - loss
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))
    return {
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "prede": float(np.mean(np.abs(err) / loss)),
        "worste": float(np.max(np.abs(err) / loss)),
    }


def mean_metrics(per_curve: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over curves (the convention of the Multi-Power Law paper)."""
    keys = per_curve[0].keys()
    return {k: float(np.mean([m[k] for m in per_curve])) for k in keys}
