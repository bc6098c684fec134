"""Plots of loss curves: observed points, predicted lines, the learning rate below."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xent_core import BadInputError

from .curves import check_curves
from .result import FitResult


def plot_curves(
    curves: Sequence[Mapping[str, Any]],
    preds: Sequence[np.ndarray],
    *,
    plt: Any,
    title: str = "",
    held_out: int = 0,
) -> Any:
    """Loss vs step (points) and prediction (lines) for each curve, with the LR schedule below.

    The last ``held_out`` curves are drawn dashed (predicted, not fitted).
    """
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_fit = len(curves) - held_out
    for i, (c, p) in enumerate(zip(curves, preds)):
        col = colors[i % len(colors)]
        label = c.get("name", f"curve {i}") + (" (held out)" if i >= n_fit else "")
        ax.plot(c["step"], c["loss"], ".", ms=2, color=col, alpha=0.5)
        ax.plot(c["step"], p, "--" if i >= n_fit else "-", lw=1.2, color=col, label=label)
        ax_lr.plot(np.arange(len(c["lr"])), c["lr"], lw=1, color=col)
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    return fig


def plot_curve_result(
    result: FitResult, *, plt: Any, curves: Any = None, title: str | None = None, **_: Any
) -> Any:
    """``plot_fn`` of curve results: fitted curves solid, extra ``curves`` dashed (held out)."""
    fitted = list(getattr(result, "curves", []) or [])
    extra = check_curves(curves) if curves is not None else []
    shown = fitted + extra
    if not shown:
        raise BadInputError("nothing to plot: the result keeps no curves; pass curves=[...]")
    preds = [np.asarray(result.predict(lr=c["lr"], step=c["step"])) for c in shown]
    return plot_curves(
        shown, preds, plt=plt, title=result.model if title is None else title, held_out=len(extra)
    )
