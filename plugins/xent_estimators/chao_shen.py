"""Chao-Shen coverage-adjusted entropy of a discrete distribution."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xent_core import BadInputError

from ._discrete import DiscreteEntropy


class ChaoShenEntropy(DiscreteEntropy):
    """Chao-Shen entropy: coverage-adjusted Horvitz-Thompson estimator for undersampled data (nats).

    With counts ``c_j``, ``N`` samples and ``f1`` singletons (symbols seen once; set to ``N - 1``
    when every sample is a singleton), the sample coverage is ``C = 1 - f1 / N``, the
    coverage-adjusted probabilities ``pa_j = C c_j / N``, and

        H_CS = -sum_j pa_j log(pa_j) / (1 - (1 - pa_j)^N).

    Args:
        input: ``"samples"`` (default) or ``"counts"``.
        base: logarithm base (default e).

    Caveats: much less biased than the plug-in estimator when many symbols are unseen, at the cost
    of variance; needs ``N >= 2``.

    Citation: Chao and Shen, "Nonparametric estimation of Shannon's index of diversity when there
    are unseen species in sample", Environmental and Ecological Statistics 10 (2003).
    """

    citation = (
        "Nonparametric estimation of Shannon's index of diversity when there are unseen species "
        "in sample",
        "Environ. Ecol. Stat. 10 (2003)",
    )
    label = "chao-shen"

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        super().__init__(input, base)

    def nats(self, c: np.ndarray) -> tuple[float, dict[str, Any]]:
        n = float(c.sum())
        if n < 2:
            raise BadInputError("chao-shen needs at least 2 samples")
        f1 = float((c == 1).sum())
        if f1 == n:
            f1 = n - 1.0
        coverage = 1.0 - f1 / n
        pa = coverage * c / n
        h = float(-(pa * np.log(pa) / (1.0 - (1.0 - pa) ** n)).sum())
        info = {
            "n": int(n),
            "support": int(c.size),
            "singletons": int((c == 1).sum()),
            "coverage": coverage,
        }
        return h, info
