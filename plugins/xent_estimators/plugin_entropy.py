"""Plug-in (maximum-likelihood) entropy of a discrete distribution from samples or counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._common import check_choice, finish, log_base, no_second_input, unit_name
from ._discrete import histogram


def plugin_entropy_nats(counts: np.ndarray) -> float:
    """``-sum p log p`` with ``p = counts / N`` (counts > 0)."""
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


class PluginEntropy:
    """Plug-in (maximum-likelihood) entropy of a discrete variable from samples or counts (nats).

    With counts ``c_j`` of the observed symbols and ``N = sum_j c_j``,

        H = -sum_j (c_j / N) log(c_j / N).

    Args:
        input: ``"samples"`` (default; 1-D symbols or 2-D rows of joint symbols) or ``"counts"``.
        base: logarithm base (default e).

    Caveats: biased low; the bias is about ``-(m - 1) / (2N)`` for ``m`` occupied symbols and much
    larger when ``N`` is not much larger than the alphabet (see ``miller-madow`` and ``chao-shen``).

    Citation: Paninski, "Estimation of Entropy and Mutual Information", Neural Computation 15
    (2003).
    """

    citation = ("Estimation of Entropy and Mutual Information", "Neural Computation 15 (2003)")
    capabilities = {"devices": ("cpu",), "accumulate": "counts"}

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        self.input = check_choice(input, "input", ("samples", "counts"))
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "plugin-entropy")
        c = histogram(x, self.input)
        h = plugin_entropy_nats(c)
        info = {"n": int(c.sum()), "support": int(c.size), "units": self.units}
        return finish(h / self._log_base, info, details)
