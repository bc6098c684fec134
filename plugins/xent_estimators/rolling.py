"""Streaming entropy over the last ``window`` decoding steps."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError

from ._common import check_positive_int, log_base
from .token_entropy import entropy_from_logits


class RollingEntropy:
    """Rolling window of per-step token entropies, for entropy-adaptive decoding.

    Each decoding step pushes the entropy ``H_t`` of the next-token distribution (one value per
    sequence of the batch); the helper keeps the last ``window`` values on the logits' device and
    reports their mean, standard deviation, min and max per sequence::

        roll = RollingEntropy(window=16, base=2)
        for step in range(max_new_tokens):
            logits = model(...)[:, -1]          # (batch, V)
            h = roll.update(logits)             # (batch,) entropy of this step, in bits
            if (roll.mean > 3.0).any(): ...     # e.g. switch sampling strategy

    ``update(logits, softcap=None, logit_scale=1.0)`` takes logits (..., V) and returns this step's
    entropies; ``push(entropies)`` appends precomputed entropies (already in ``base`` units).
    Statistics ignore empty slots until the window fills. Nothing is kept beyond the window.
    """

    def __init__(self, window: int, base: float = math.e) -> None:
        self.window = check_positive_int(window, "window", 1)
        self._log_base = log_base(base)
        self.base = base
        self._buf: torch.Tensor | None = None
        self._count = 0  # total pushes since reset
        self._pos = 0

    def reset(self) -> None:
        """Forget every step (e.g. at the start of a new batch)."""
        self._buf, self._count, self._pos = None, 0, 0

    def update(
        self, logits: torch.Tensor, *, softcap: float | None = None, logit_scale: float = 1.0
    ) -> torch.Tensor:
        """Push the entropy of ``softmax(logits)`` (..., V); return it (shape ``logits.shape[:-1]``)."""
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(logits)
        h = entropy_from_logits(logits.detach(), softcap=softcap, logit_scale=logit_scale)
        h = h / self._log_base
        self.push(h)
        return h

    def push(self, entropy: Any) -> None:
        """Append one step of entropies (a scalar or a tensor of the batch shape)."""
        h = torch.as_tensor(entropy).detach()
        h = h.to(torch.float64 if h.dtype == torch.float64 else torch.float32)
        if self._buf is None:
            self._buf = torch.zeros((self.window, *h.shape), dtype=h.dtype, device=h.device)
        elif h.shape != self._buf.shape[1:]:
            raise BadInputError(
                f"step entropies have shape {tuple(h.shape)}, expected {tuple(self._buf.shape[1:])}"
                " (the batch shape of earlier steps); call reset() to start a new batch"
            )
        self._buf[self._pos] = h.to(self._buf.device, self._buf.dtype)
        self._pos = (self._pos + 1) % self.window
        self._count += 1

    def __len__(self) -> int:
        """Number of steps currently in the window."""
        return min(self._count, self.window)

    @property
    def steps(self) -> int:
        """Total number of steps pushed since the last reset."""
        return self._count

    @property
    def full(self) -> bool:
        """True once ``window`` steps have been pushed."""
        return self._count >= self.window

    @property
    def values(self) -> torch.Tensor:
        """The entropies in the window, oldest first: shape (len, *batch)."""
        buf = self._require()
        n = len(self)
        if n < self.window:
            return buf[:n].clone()
        return torch.roll(buf, shifts=-self._pos, dims=0).clone()

    @property
    def last(self) -> torch.Tensor:
        """The most recent step's entropies."""
        buf = self._require()
        return buf[(self._pos - 1) % self.window].clone()

    @property
    def mean(self) -> torch.Tensor:
        """Mean entropy over the window, per sequence."""
        return self.values.mean(dim=0)

    @property
    def std(self) -> torch.Tensor:
        """Population standard deviation over the window, per sequence (0 with one step)."""
        return self.values.std(dim=0, correction=0)

    @property
    def min(self) -> torch.Tensor:
        """Smallest entropy in the window, per sequence."""
        return self.values.min(dim=0).values

    @property
    def max(self) -> torch.Tensor:
        """Largest entropy in the window, per sequence."""
        return self.values.max(dim=0).values

    def _require(self) -> torch.Tensor:
        if self._buf is None or self._count == 0:
            raise BadInputError("RollingEntropy is empty: call update() or push() first")
        return self._buf
