"""Miller-Madow bias-corrected entropy of a discrete distribution."""

from __future__ import annotations

import math
from typing import Any

from ._common import check_choice, finish, log_base, no_second_input, unit_name
from ._discrete import histogram
from .plugin_entropy import plugin_entropy_nats


class MillerMadowEntropy:
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
    capabilities = {"devices": ("cpu",), "accumulate": "counts"}

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        self.input = check_choice(input, "input", ("samples", "counts"))
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "miller-madow")
        c = histogram(x, self.input)
        n, m = float(c.sum()), int(c.size)
        plugin = plugin_entropy_nats(c)
        h = plugin + (m - 1) / (2.0 * n)
        info = {
            "n": int(n),
            "support": m,
            "plugin": plugin / self._log_base,
            "correction": (m - 1) / (2.0 * n) / self._log_base,
            "units": self.units,
        }
        return finish(h / self._log_base, info, details)
