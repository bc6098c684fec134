"""Goodness-of-fit numbers shared by every law: R^2, MAE, RMSE (and their log-space cousins)."""

from __future__ import annotations

import numpy as np


def regression_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``r2``, ``mae``, ``rmse`` of ``predicted`` against ``observed`` (linear scale) and
    ``rmse_log`` of the log residuals when both are positive.

    ``r2 = 1 - sum (y - yhat)^2 / sum (y - mean y)^2`` (NaN when ``y`` is constant).
    """
    y = np.asarray(observed, dtype=np.float64).ravel()
    p = np.asarray(predicted, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"observed {y.shape} and predicted {p.shape} differ in shape")
    res = y - p
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    out = {
        "r2": 1.0 - float(np.sum(res**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "mae": float(np.mean(np.abs(res))),
        "rmse": float(np.sqrt(np.mean(res**2))),
    }
    if (y > 0).all() and (p > 0).all():
        out["rmse_log"] = float(np.sqrt(np.mean((np.log(y) - np.log(p)) ** 2)))
    return out
