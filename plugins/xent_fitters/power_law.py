"""Power law plus constant, L(x) = E + A x^-alpha, in one variable (N, D or C)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xent_core import BadParameterError
from xent_core.validate import flag

from .engine import Problem, lse_model
from .law import HuberLaw, as_output, lse_bounds

_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
_E_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97)


def predict_power(params: Mapping[str, float], **inputs: Any) -> Any:
    """``E + A * x^-alpha`` where ``x`` is the one input given (``N=``, ``D=``, ``C=``, ...)."""
    if len(inputs) != 1:
        raise BadParameterError(f"power-law predicts from one input, got {sorted(inputs)}")
    (x,) = inputs.values()
    x = np.asarray(x, dtype=np.float64)
    return as_output(params.get("E", 0.0) + params["A"] * x ** -params["alpha"])


def plot_power(result: Any, *, plt: Any, **_: Any) -> Any:
    from .plots import curve_panel, residual_panel

    (name,) = [k for k in result.data if k != result.target]
    x, y = result.data[name], result.data[result.target]
    grid = np.logspace(np.log10(x.min()), np.log10(x.max()) + 1, 100)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    curve_panel(
        axes[0],
        x,
        y,
        grid,
        result.predict(**{name: grid}),
        name,
        result.target,
        f"E + A {name}^-alpha, alpha = {result.params['alpha']:.3f}",
    )
    if "E" in result.params:
        axes[0].axhline(result.params["E"], color="k", ls=":", lw=1)
    residual_panel(axes[1], result, name)
    fig.tight_layout()
    return fig


class PowerLaw(HuberLaw):
    """Power law plus constant L(x) = E + A * x^-alpha for one variable x (N, D or C).

    Formula: ``L(x) = E + A x^-alpha`` (``irreducible=False`` drops ``E``); fitted as
    ``log L = LSE(a - alpha log x, e)`` with a Huber loss on log residuals (``delta``),
    from a data-driven grid of starts (alpha in 0.02..1.5, E as a fraction of the smallest
    loss, A by least squares) or ``grid`` over the internal names ``a, e, alpha``.

    Columns: the input named by ``x`` and ``loss``. Fitted parameters: ``E``, ``A``,
    ``alpha``.

    Args:
        x: name of the input column (``N``, ``D``, ``C``, ...).
        irreducible: fit the constant ``E`` (False: ``L = A x^-alpha``).
        **engine: the engine options of ``chinchilla`` (``delta``, ``grid``, ``bootstrap``, ...).
    """

    citation = (
        ("Scaling Laws for Autoregressive Generative Modeling", "arXiv:2010.14701"),
        ("Scaling Laws for Neural Language Models", "arXiv:2001.08361"),
    )

    law_name = "power-law"

    def __init__(
        self,
        x: str = "N",
        irreducible: bool = True,
        **engine: Any,
    ) -> None:
        if not isinstance(x, str) or not x:
            raise BadParameterError(f"x must name the input column (N, D, C, ...), got {x!r}")
        self.input_names = (x,)
        self.irreducible = flag("irreducible", irreducible)
        self.internal_names = ("a", "e", "alpha") if self.irreducible else ("a", "alpha")
        self.param_names = ("E", "A", "alpha") if self.irreducible else ("A", "alpha")
        super().__init__(**engine)

    predict_fn = staticmethod(predict_power)
    plot_fn = staticmethod(plot_power)

    def problem(self, cols: Mapping[str, np.ndarray]) -> Problem:
        lx = np.log(cols[self.input_names[0]])
        k = len(self.internal_names)
        alpha = k - 1
        terms: list = [(0, [(alpha, -lx)])]
        if self.irreducible:
            terms.append((1, []))
        lo, hi = lse_bounds(self.internal_names, ("alpha",))
        return Problem(
            lse_model(terms, k), np.log(cols["loss"]), self.internal_names, lo, hi, self.delta
        )

    def default_grid(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        lx, y = np.log(cols[self.input_names[0]]), cols["loss"]
        fractions = _E_FRACTIONS if self.irreducible else (0.0,)
        rows = []
        for alpha in _ALPHAS:
            for frac in fractions:
                E = frac * y.min()
                a = float(np.mean(np.log(y - E) + alpha * lx))
                if self.irreducible:
                    rows.append((a, np.log(max(E, 1e-3 * y.min())), alpha))
                else:
                    rows.append((a, alpha))
        return np.asarray(rows)

    def to_params(self, theta: np.ndarray) -> dict[str, float]:
        if self.irreducible:
            a, e, al = map(float, theta)
            return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": al}
        a, al = map(float, theta)
        return {"A": float(np.exp(a)), "alpha": al}
