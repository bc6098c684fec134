"""entropy-switch: Entropy Adaptive Decoding's small/large model switching rule and its cost.

``EntropySwitch`` is the stateful rule a decoding loop calls once per step (one decision per
sequence of the batch); ``switch_schedule`` runs it over a recorded entropy trace;
``switch_cost`` is the accounting. The registered estimator ``entropy-switch`` returns the
relative cost of a trace. Handing the KV cache from one model to the other is the decoding
loop's business, not xent's.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import check_finite, finish, to_tensor
from .rolling import RollingEntropy


def switch_cost(
    fraction_large: float, size_ratio: float, *, small_always_runs: bool = False
) -> float:
    """Cost of a switched decode relative to the large model alone.

    ``c = f + (1 - f) * r`` with ``f`` the fraction of tokens the large model produced and
    ``r = P_small / P_large`` (parameters, or any per-token cost); the saving is ``1 - c``.
    With ``small_always_runs`` the small model also runs on the large model's steps (its
    entropy is still monitored there): ``c = f + r``.

    Args:
        fraction_large: f in [0, 1].
        size_ratio: r = cost of a small-model step / cost of a large-model step, in (0, 1].
        small_always_runs: count the small model on every step.
    """
    f = validate.unit_interval("fraction_large", fraction_large)
    r = validate.number("size_ratio", size_ratio, low=0.0, high=1.0, low_open=True)
    small_always_runs = validate.flag("small_always_runs", small_always_runs)
    return f + r if small_always_runs else f + (1.0 - f) * r


class EntropySwitch:
    """The switching rule, stepped by a decoding loop (per-sequence state for a batch).

    Each step gets the small model's next-token logits (``step(logits)``) or entropies
    (``step_entropy(h)``); the rolling mean ``m_t`` of the last ``window`` entropies
    (a :class:`RollingEntropy`; fewer while the window fills) decides, per sequence:

        switch to the large model   when m_t > threshold
        switch back to the small    when m_t <= threshold - hysteresis

    and a sequence stays at least ``min_dwell`` steps on a model after switching to it. The
    returned bool tensor says which sequences the large model decodes at this step.
    """

    def __init__(
        self,
        threshold: float,
        window: int = 1,
        hysteresis: float = 0.0,
        min_dwell: int = 1,
        base: float = math.e,
    ) -> None:
        self.threshold = validate.number("threshold", threshold)
        self.window = validate.integer("window", window, low=1)
        self.hysteresis = validate.nonnegative("hysteresis", hysteresis)
        self.min_dwell = validate.integer("min_dwell", min_dwell, low=1)
        self.rolling = RollingEntropy(self.window, base=base)
        self.reset()

    def reset(self) -> None:
        """Forget the state (a new batch starts on the small model)."""
        self.rolling.reset()
        self._large: torch.Tensor | None = None
        self._dwell: torch.Tensor | None = None
        self.decisions: list[torch.Tensor] = []

    def step(self, logits: Any) -> torch.Tensor:
        """One decoding step from the small model's logits (..., V)."""
        self.rolling.update(torch.as_tensor(logits))
        return self._decide()

    def step_entropy(self, entropy: Any) -> torch.Tensor:
        """One decoding step from precomputed entropies (batch shape; in ``base`` units)."""
        self.rolling.push(entropy)
        return self._decide()

    def _decide(self) -> torch.Tensor:
        mean = self.rolling.mean
        if self._large is None or self._dwell is None:
            self._large = torch.zeros(mean.shape, dtype=torch.bool, device=mean.device)
            self._dwell = torch.full(
                mean.shape, self.min_dwell, dtype=torch.int64, device=mean.device
            )
        free = self._dwell >= self.min_dwell
        up = free & ~self._large & (mean > self.threshold)
        down = free & self._large & (mean <= self.threshold - self.hysteresis)
        switched = up | down
        self._large = self._large ^ switched
        self._dwell = torch.where(switched, torch.ones_like(self._dwell), self._dwell + 1)
        self.decisions.append(self._large.clone())
        return self._large.clone()

    @property
    def fraction_large(self) -> float:
        """Fraction of (sequence, step) decisions so far that went to the large model."""
        if not self.decisions:
            raise BadInputError("EntropySwitch has made no decision yet")
        return float(torch.stack(self.decisions).double().mean())


def switch_schedule(
    entropies: Any,
    *,
    threshold: float,
    window: int = 1,
    hysteresis: float = 0.0,
    min_dwell: int = 1,
) -> torch.Tensor:
    """Decisions of :class:`EntropySwitch` over a recorded trace: (T,) or (B, T) bools.

    Args:
        entropies: (T,) or (B, T) small-model entropies, step by step (>= 0).
        threshold: switch to the large model above this rolling mean.
        window: steps of the rolling mean.
        hysteresis: switch back only at or below threshold - hysteresis.
        min_dwell: steps a sequence stays on a model after switching to it.
    """
    h = to_tensor(entropies, "entropies", torch.float64)
    if h.dim() not in (1, 2) or h.numel() == 0:
        raise BadInputError(f"entropies must be a non-empty (T,) or (B, T); got {tuple(h.shape)}")
    check_finite(h, "entropies")
    if bool((h < 0).any()):
        raise BadInputError("entropies must be >= 0")
    rule = EntropySwitch(threshold, window, hysteresis, min_dwell)
    rows = h if h.dim() == 2 else h[None]
    if rule.hysteresis == 0.0 and rule.min_dwell == 1:
        # without hysteresis or dwell the rule keeps no state: large exactly when m_t > threshold
        out = _rolling_means(rows, rule.window) > rule.threshold
    else:
        out = torch.stack([rule.step_entropy(s) for s in rows.T], dim=-1)  # (B, T)
    return out if h.dim() == 2 else out[0]


def _rolling_means(h: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T) means of the last ``window`` steps (fewer while filling), as RollingEntropy."""
    w = min(window, h.shape[1])
    # windows laid out (w, B, T - w + 1), oldest first, reduced over dim 0 like RollingEntropy
    full = h.unfold(1, w, 1).permute(2, 0, 1).contiguous().mean(dim=0)
    head = [h[:, : t + 1].T.contiguous().mean(dim=0) for t in range(w - 1)]
    return torch.cat([torch.stack(head, dim=1), full], dim=1) if head else full


class EntropySwitchCost:
    """entropy-switch: Entropy Adaptive Decoding's switching rule; value = relative cost.

    Replays a trace of the small model's next-token entropies ``H_t`` (T,) or (B, T) through
    the rule of :class:`EntropySwitch`: the large model decodes step t when the rolling mean of
    the last ``window`` entropies exceeds ``threshold`` (back to the small one at or below
    ``threshold - hysteresis``; at least ``min_dwell`` steps per switch). With ``f`` the fraction
    of tokens on the large model and ``r = size_ratio = P_small / P_large``, the value is

        c = f + (1 - f) r        (c = f + r with small_always_runs),

    the compute relative to decoding with the large model alone (the saving is 1 - c). The paper
    counts nominal parameter sizes; pass any per-token cost ratio. ``details``: ``use_large``
    (the (B, T) decisions), ``switch_points`` (per sequence, the steps where the model changes),
    ``fraction_large``, ``cost``, ``saving``. While the window fills, the mean is over the
    steps seen so far. Cost O(B T window) time and memory (O(B window) memory with
    hysteresis or min_dwell, which replay the rule step by step).

    Args:
        threshold: rolling-mean entropy above which the large model decodes (input units).
        size_ratio: P_small / P_large in (0, 1].
        window: steps in the rolling mean.
        hysteresis: gap below the threshold before switching back (>= 0).
        min_dwell: minimum steps on a model after a switch.
        small_always_runs: count the small model's step on every token.

    Citation: "Entropy Adaptive Decoding: Dynamic Model Switching for Efficient Inference"
    (arXiv:2502.06833).
    """

    citation = (
        "Entropy Adaptive Decoding: Dynamic Model Switching for Efficient Inference",
        "arXiv:2502.06833",
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        threshold: float,
        size_ratio: float,
        window: int = 1,
        hysteresis: float = 0.0,
        min_dwell: int = 1,
        small_always_runs: bool = False,
    ) -> None:
        self.threshold = validate.number("threshold", threshold)
        self.size_ratio = validate.number(
            "size_ratio", size_ratio, low=0.0, high=1.0, low_open=True
        )
        self.window = validate.integer("window", window, low=1)
        self.hysteresis = validate.nonnegative("hysteresis", hysteresis)
        self.min_dwell = validate.integer("min_dwell", min_dwell, low=1)
        self.small_always_runs = validate.flag("small_always_runs", small_always_runs)
        self.units = "relative cost"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is not None:
            raise BadInputError("entropy-switch takes one input: the small model's entropies")
        use = switch_schedule(
            x,
            threshold=self.threshold,
            window=self.window,
            hysteresis=self.hysteresis,
            min_dwell=self.min_dwell,
        )
        rows = use if use.dim() == 2 else use[None]
        f = float(rows.double().mean())
        cost = switch_cost(f, self.size_ratio, small_always_runs=self.small_always_runs)
        if not details:
            return cost
        changes = rows[:, 1:] != rows[:, :-1]
        points = [(torch.nonzero(c).reshape(-1) + 1).tolist() for c in changes]
        if bool(rows[:, :1].any()):  # a sequence that starts on the large model switches at 0
            points = [([0] if bool(r[0]) else []) + p for r, p in zip(rows, points)]
        info = {
            "use_large": rows.cpu().numpy(),
            "switch_points": points,
            "fraction_large": f,
            "cost": cost,
            "saving": 1.0 - cost,
        }
        return finish(cost, info, details)
