"""Plug-in (maximum-likelihood) entropy of a discrete distribution from samples or counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._discrete import DiscreteEntropy


def plugin_entropy_nats(counts: np.ndarray) -> float:
    """``-sum p log p`` with ``p = counts / N`` (counts > 0)."""
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


class PluginEntropy(DiscreteEntropy):
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
    label = "plugin-entropy"

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        super().__init__(input, base)

    def nats(self, c: np.ndarray) -> tuple[float, dict[str, Any]]:
        return plugin_entropy_nats(c), {"n": int(c.sum()), "support": int(c.size)}
