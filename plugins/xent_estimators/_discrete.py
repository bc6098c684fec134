"""The discrete entropy estimators' common ground: samples or counts -> a count vector, and
the base class that reads the input and converts the result to the chosen ``base``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError

from ._common import check_choice, finish, log_base, no_second_input, unit_name


def histogram(x: Any, input: str) -> np.ndarray:
    """Positive counts per observed symbol, as float64.

    ``input="samples"``: ``x`` is a 1-D sequence of symbols (integers, strings, ...) or a 2-D array
    whose rows are joint symbols. ``input="counts"``: ``x`` is a 1-D vector of non-negative
    (integer) counts, zero bins allowed.
    """
    kind = check_choice(input, "input", ("samples", "counts"))
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # numpy has no bfloat16; every bf16/fp16 value is exact in float32
        x = x.numpy()
    if x is None:
        raise BadInputError("no samples: got None")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise BadInputError(f"samples must form a rectangular array: {exc}") from exc
    if arr.size == 0:
        raise BadInputError("no samples: the input is empty")
    if kind == "counts":
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise BadInputError(f"counts must be a 1-D numeric vector; got shape {arr.shape}")
        c = arr.astype(np.float64)
        if not np.isfinite(c).all() or (c < 0).any():
            raise BadInputError("counts must be finite and >= 0")
        if np.any(np.mod(c, 1) != 0):
            raise BadInputError("counts must be whole numbers (frequencies, not probabilities)")
        c = c[c > 0]
        if c.size == 0:
            raise BadInputError("all counts are zero")
        return c
    if arr.ndim not in (1, 2):
        raise BadInputError(
            f"samples must be 1-D symbols or 2-D rows of joint symbols; got shape {arr.shape}"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise BadInputError("samples contain NaN or inf")
    if arr.dtype == object:
        arr = arr.astype(str)
    _, counts = np.unique(arr, axis=0 if arr.ndim == 2 else None, return_counts=True)
    return counts.astype(np.float64)


class DiscreteEntropy:
    """Base of ``plugin-entropy``, ``miller-madow`` and ``chao-shen``: parameters, input, units.

    A subclass sets ``label`` (its name in error messages), lists the parameters in its own
    ``__init__`` (so its module states the defaults) and overrides :meth:`nats`, which gets the
    positive counts and returns the entropy in nats with its details.

    Args:
        input: ``"samples"`` (default; 1-D symbols or 2-D rows of joint symbols) or ``"counts"``.
        base: logarithm base (default e).
    """

    label = "discrete-entropy"
    capabilities = {"devices": ("cpu",), "accumulate": "counts"}

    def __init__(self, input: str = "samples", base: float = math.e) -> None:
        self.input = check_choice(input, "input", ("samples", "counts"))
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def nats(self, c: np.ndarray) -> tuple[float, dict[str, Any]]:
        """``(entropy in nats, details)`` from the positive counts ``c`` (float64)."""
        raise NotImplementedError

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, self.label)
        h, info = self.nats(histogram(x, self.input))
        return finish(h / self._log_base, {**info, "units": self.units}, details)
