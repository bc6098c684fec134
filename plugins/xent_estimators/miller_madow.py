"""Miller-Madow bias-corrected entropy of a discrete distribution."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._discrete import DiscreteEntropy
from .plugin_entropy import plugin_entropy_nats


class MillerMadowEntropy(DiscreteEntropy):
    """Miller-Madow entropy: plug-in entropy plus the first-order bias correction (m - 1) / (2N).

    With ``N`` samples of which ``m`` distinct symbols were observed,

        H_MM = H_plugin + (m - 1) / (2 N)      (in nats; converted to ``base`` after).

    Args:
        input: ``"samples"`` (default) or ``"counts"``.
        base: logarithm base (default e).

    Caveats: corrects the leading ``O(1/N)`` bias only; still biased low when many symbols are
    unseen (``N`` comparable to the alphabet size).

    Citation: Miller, "Note on the bias of information estimates", in Information Theory in
    Psychology (1955); Paninski, "Estimation of Entropy and Mutual Information", Neural
    Computation 15 (2003).
    """

    citation = (
        ("Note on the bias of information estimates", "Information Theory in Psychology (1955)"),
        ("Estimation of Entropy and Mutual Information", "Neural Computation 15 (2003)"),
    )
    label = "miller-madow"

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        super().__init__(input, base)

    def nats(self, c: np.ndarray) -> tuple[float, dict[str, Any]]:
        n, m = float(c.sum()), int(c.size)
        plugin = plugin_entropy_nats(c)
        h = plugin + (m - 1) / (2.0 * n)
        info = {
            "n": int(n),
            "support": m,
            "plugin": plugin / self._log_base,
            "correction": (m - 1) / (2.0 * n) / self._log_base,
        }
        return h, info
