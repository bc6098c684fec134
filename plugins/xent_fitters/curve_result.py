"""``CurveFitResult``: the result of a curve fit (``lr-annealing``, ``multi-power``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xent_core import BadInputError

from .curve_metrics import curve_metrics, mean_metrics
from .curves import check_curves
from .result import FitResult

CurvePredict = Callable[..., np.ndarray]  # curve_predict(params, lr=, step=) -> losses


@dataclass
class CurveFitResult(FitResult):
    """A fitted loss-curve law: ``predict(lr=, step=)``, ``evaluate(curves)``, ``plot(path)``.

    ``curves`` are the (checked) curves it was fitted on, kept for plots and residuals; they are
    not serialised by ``to_json``. ``metrics`` hold the objective and the mean over the fitted
    curves of R^2, MAE, RMSE, PredE and WorstE.
    """

    curves: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def predict(self, lr: Any = None, step: Any = None, **inputs: Any) -> np.ndarray:  # type: ignore[override]
        """Predicted losses at ``step`` (sampled steps) for the per-step schedule ``lr``."""
        if inputs or lr is None or step is None:
            extra = f"; unexpected {sorted(inputs)}" if inputs else ""
            raise BadInputError(f"predict takes lr= (per-step schedule) and step={extra}")
        return super().predict(lr=lr, step=step)

    def evaluate(self, curves: Any) -> dict[str, Any]:
        """Score the law on ``curves``: mean metrics (``r2``, ``mae``, ``rmse``, ``prede``,
        ``worste``) and the per-curve ones under ``"per_curve"``."""
        checked = check_curves(curves)
        per = []
        for i, c in enumerate(checked):
            m = curve_metrics(c["loss"], self.predict(lr=c["lr"], step=c["step"]))
            per.append({"name": c.get("name", f"curve {i}"), **m})
        out: dict[str, Any] = mean_metrics(
            [{k: v for k, v in m.items() if k != "name"} for m in per]
        )
        out["per_curve"] = per
        return out

    def residuals(self) -> np.ndarray:
        """``log(observed) - log(predicted)`` over the fitted curves, concatenated."""
        if not self.curves:
            return super().residuals()
        return np.concatenate(
            [
                np.log(c["loss"]) - np.log(self.predict(lr=c["lr"], step=c["step"]))
                for c in self.curves
            ]
        )
