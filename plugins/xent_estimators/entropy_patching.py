"""entropy-patching: patch boundaries from next-token entropies (BLT global/monotonic, EntroPE).

``entropy_patch_starts`` is the plain helper (torch in, torch out, on the input's device); the
registered estimator ``entropy-patching`` wraps it and reports the mean patch length.

Conventions: ``H_t`` is the entropy of the model's distribution of token ``t+1`` given tokens
``0..t``, so a high ``H_t`` opens a new patch *at* ``t+1`` (the +1 shift). Starts lie in
``[0, L)``; with ``include_next_token`` the token still to come (position ``L``) belongs to the
sequence too, so a start may equal ``L`` and the lengths sum to ``L + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, validate

from ._common import check_finite, finish, to_tensor

MODES = ("threshold", "monotonic", "quantile", "quantile-monotonic", "topk")


@dataclass
class Patches:
    """Patch boundaries of a batch of sequences (padded to the longest patch list)."""

    start_ids: torch.Tensor
    """(B, P) int64 start positions, padded with each sequence's end (its length)."""
    patch_lengths: torch.Tensor
    """(B, P) int64 patch lengths, padded with 0; each row sums to the sequence's length."""
    num_patches: torch.Tensor
    """(B,) int64 number of patches per sequence."""
    thresholds: torch.Tensor
    """(B,) the threshold each sequence was cut with (NaN for ``topk``)."""

    def starts(self, b: int = 0) -> list[int]:
        """The start ids of sequence ``b`` without padding."""
        return self.start_ids[b, : int(self.num_patches[b])].tolist()

    def lengths(self, b: int = 0) -> list[int]:
        """The patch lengths of sequence ``b`` without padding."""
        return self.patch_lengths[b, : int(self.num_patches[b])].tolist()


def _entropies(entropies: Any) -> torch.Tensor:
    h = to_tensor(entropies, "entropies", torch.float64)
    if h.dim() == 1:
        h = h[None]
    if h.dim() != 2:
        raise BadInputError(f"entropies must have shape (L,) or (B, L); got {tuple(h.shape)}")
    if h.numel():
        low, high = torch.aminmax(h)  # one pass; NaN propagates to both
        if not bool((low > -math.inf) & (high < math.inf)):
            check_finite(h, "entropies")
        if bool(low < 0):
            raise BadInputError("entropies must be >= 0 (entropies of next-token distributions)")
    return h


def _lengths(lengths: Any, h: torch.Tensor) -> torch.Tensor:
    if lengths is None:
        return torch.full((h.shape[0],), h.shape[1], dtype=torch.int64, device=h.device)
    n = to_tensor(lengths, "lengths", torch.float64).reshape(-1).to(h.device)
    if n.numel() != h.shape[0] or not bool((n == n.round()).all()):
        raise BadInputError(
            f"lengths must hold one integer per sequence ({h.shape[0]}); got {tuple(n.shape)}"
        )
    if bool((n < 0).any()) or bool((n > h.shape[1]).any()):
        raise BadInputError(f"lengths must lie in [0, {h.shape[1]}] (the padded length)")
    return n.to(torch.int64)


def entropy_patch_starts(
    entropies: Any,
    *,
    mode: str = "quantile",
    threshold: float | None = None,
    quantile: float = 0.75,
    patch_size: int = 4,
    include_next_token: bool = False,
    max_patch_length: int | None = None,
    lengths: Any = None,
) -> Patches:
    """Patch start ids of each sequence from its per-position next-token entropies.

    Args:
        entropies: (L,) or (B, L) entropies ``H_t`` (>= 0, any unit); padding past ``lengths``.
        mode: ``threshold`` (BLT global: starts {0, 1} and t+1 where H_t > threshold, t >= 1),
            ``monotonic`` (BLT: starts {0, 1} and t+1 where H_t - H_{t-1} > threshold, t >= 1),
            ``quantile`` (EntroPE: starts {0} and t+1 where H_t > q-quantile of the sequence's
            H), ``quantile-monotonic`` (the same on the differences H_t - H_{t-1}), ``topk``
            (BLT static: starts {0, 1} and t+1 for the L // patch_size - 2 largest H_t, t >= 1).
        threshold: the cut of ``threshold``/``monotonic`` (required there, unused elsewhere).
        quantile: q in [0, 1] of the quantile modes (linear interpolation, as torch.quantile).
        patch_size: average patch size that sets k in ``topk``.
        include_next_token: the token to come (position L) is part of the sequence.
        max_patch_length: split longer patches into pieces of this many tokens (None: no limit).
        lengths: (B,) valid length of each padded sequence (None: all of L).
    """
    return _pack(*_start_mask(entropies, mode, threshold, quantile, patch_size,
                              include_next_token, max_patch_length, lengths))  # fmt: skip


def _start_mask(
    entropies: Any,
    mode: str,
    threshold: float | None,
    quantile: float,
    patch_size: int,
    include_next_token: bool,
    max_patch_length: int | None,
    lengths: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L + extra) bool patch starts, (B,) sequence ends and (B,) thresholds."""
    mode = validate.choice("mode", mode, MODES)
    threshold = validate.optional(validate.number, "threshold", threshold)
    quantile = validate.unit_interval("quantile", quantile)
    patch_size = validate.integer("patch_size", patch_size, low=1)
    include_next_token = validate.flag("include_next_token", include_next_token)
    max_patch_length = validate.optional(
        validate.integer, "max_patch_length", max_patch_length, low=1
    )
    if mode in ("threshold", "monotonic") and threshold is None:
        raise BadParameterError(f"mode {mode!r} needs a threshold")
    h = _entropies(entropies)
    n = _lengths(lengths, h)
    b, big_l = h.shape
    if big_l == 0 or b == 0:
        raise BadInputError("entropies is empty: no positions to patch")
    extra = int(include_next_token)
    pos = torch.arange(big_l, device=h.device)
    valid = pos[None] < n[:, None]  # (B, L): H_t is defined
    # candidate t: the start t+1 must lie inside the sequence (or equal L with the next token)
    usable = pos[None] + 1 < n[:, None] + extra
    if mode in ("monotonic", "quantile-monotonic"):
        diffs = torch.full_like(h, torch.nan)
        diffs[:, 1:] = h[:, 1:] - h[:, :-1]
    thresholds = torch.full((b,), torch.nan, dtype=h.dtype, device=h.device)
    if mode in ("threshold", "monotonic", "topk"):
        usable &= pos[None] >= 1  # positions 0 and 1 always start a patch
    if mode == "threshold":
        cut = h > threshold
        thresholds[:] = threshold
    elif mode == "monotonic":
        cut = diffs > threshold  # NaN at t = 0 compares False
        thresholds[:] = threshold
    elif mode in ("quantile", "quantile-monotonic"):
        values = h if mode == "quantile" else diffs
        defined = valid if mode == "quantile" else valid & (pos[None] >= 1)
        masked = torch.where(defined, values, torch.full_like(values, torch.nan))
        thresholds = _nanquantile(masked, quantile)
        cut = values > thresholds[:, None]
    else:
        k = (n + extra) // patch_size - 2
        score = torch.where(usable, h, torch.full_like(h, -torch.inf))
        order = torch.sort(score, dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(1, order, pos.expand(b, -1).contiguous())
        cut = rank < k[:, None]
    cut = cut & usable & valid
    size = big_l + extra
    start = torch.zeros((b, size), dtype=torch.bool, device=h.device)
    start[:, 1:] = cut[:, : size - 1] if extra == 0 else cut
    start[:, 0] = True
    if mode in ("threshold", "monotonic", "topk") and size > 1:
        start[:, 1] = True
    ends = n + extra
    inside = torch.arange(size, device=h.device)[None] < ends[:, None]
    start &= inside
    if max_patch_length is not None:
        idx = torch.arange(size, device=h.device)
        last = torch.where(start, idx[None], torch.zeros_like(idx)[None]).cummax(dim=1).values
        start |= ((idx[None] - last) % max_patch_length == 0) & inside
    return start, ends, thresholds


def _nanquantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """Row-wise quantile over the non-NaN entries (NaN for a row without any)."""
    out = torch.full((x.shape[0],), torch.nan, dtype=x.dtype, device=x.device)
    some = ~torch.isnan(x).all(dim=1)
    if bool(some.any()):
        out[some] = torch.nanquantile(x[some], q, dim=1)
    return out


def _pack(start: torch.Tensor, ends: torch.Tensor, thresholds: torch.Tensor) -> Patches:
    b = start.shape[0]
    counts = start.sum(dim=1)
    width = max(int(counts.max()) if b else 0, 1)
    # the k-th start of row r goes to column k (row-major nonzero keeps them in order)
    row, col = start.nonzero(as_tuple=True)
    slot = torch.arange(row.numel(), device=start.device) - (counts.cumsum(0) - counts)[row]
    start_ids = ends[:, None].expand(b, width).clone()  # padded with each sequence's end
    start_ids[row, slot] = col
    nxt = torch.cat([start_ids[:, 1:], ends[:, None]], dim=1)
    lengths = nxt - start_ids
    return Patches(start_ids, lengths, counts, thresholds)


class EntropyPatching:
    """entropy-patching: patch boundaries from next-token entropies; value = mean patch length.

    With ``H_t`` the entropy of the next-token distribution at position t (xent's
    ``token-entropy`` with ``details['per_token']``, from any small causal model), a patch starts
    at t+1 when H_t is high:

        threshold:  S = {0, 1} u {t+1 : t >= 1, H_t > theta}             (BLT, global)
        monotonic:  S = {0, 1} u {t+1 : t >= 1, H_t - H_{t-1} > theta}   (BLT)
        quantile:   S = {0} u {t+1 : H_t > Q_q(H)}                        (EntroPE, per sequence)
        topk:       S = {0, 1} u {t+1 : H_t among the L // patch_size - 2 largest, t >= 1}

    ``quantile-monotonic`` applies the quantile rule to the differences. Ties of ``topk`` keep
    the earlier position. The value is the number of tokens per patch (total tokens / total
    patches), the compression a patcher gives. Call ``est(entropies)`` with entropies (L,) or
    (B, L); a second input gives the valid length of each padded sequence. ``details``:
    ``start_ids`` (B, P) padded with the sequence's end, ``patch_lengths`` (B, P) padded with 0,
    ``num_patches``, ``thresholds`` (per sequence) and ``patches`` (the :class:`Patches` record).
    Cost O(B L log L) time (the sort of topk; O(B L) otherwise), O(B L) memory, on the input's
    device.

    Args:
        mode: ``threshold``, ``monotonic``, ``quantile``, ``quantile-monotonic`` or ``topk``.
        threshold: theta of ``threshold``/``monotonic`` (required there).
        quantile: q of the quantile modes (EntroPE's default 0.75).
        patch_size: average patch size that sets k in ``topk``.
        include_next_token: the token to come (position L) is part of the sequence.
        max_patch_length: split longer patches into pieces of this length (None: no limit).

    Citations: Pagnoni et al., "Byte Latent Transformer: Patches Scale Better Than Tokens"
    (arXiv:2412.09871); Abeywickrama et al., "EntroPE: Entropy-Guided Dynamic Patch Encoder for
    Time Series Forecasting" (arXiv:2509.26157).
    """

    citation = (
        ("Byte Latent Transformer: Patches Scale Better Than Tokens", "arXiv:2412.09871"),
        ("EntroPE: Entropy-Guided Dynamic Patch Encoder for Time Series Forecasting", "arXiv:2509.26157"),
    )  # fmt: skip
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        mode: str = "quantile",
        threshold: float | None = None,
        quantile: float = 0.75,
        patch_size: int = 4,
        include_next_token: bool = False,
        max_patch_length: int | None = None,
    ) -> None:
        self.mode = validate.choice("mode", mode, MODES)
        self.threshold = validate.optional(validate.number, "threshold", threshold)
        if self.mode in ("threshold", "monotonic") and self.threshold is None:
            raise BadParameterError(f"mode {self.mode!r} needs a threshold")
        self.quantile = validate.unit_interval("quantile", quantile)
        self.patch_size = validate.integer("patch_size", patch_size, low=1)
        self.include_next_token = validate.flag("include_next_token", include_next_token)
        self.max_patch_length = validate.optional(
            validate.integer, "max_patch_length", max_patch_length, low=1
        )
        self.units = "tokens per patch"

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if not details and y is None and self.mode == "threshold" and not self.max_patch_length:
            return self._threshold_value(x)
        mask = _start_mask(x, self.mode, self.threshold, self.quantile, self.patch_size,
                           self.include_next_token, self.max_patch_length, y)  # fmt: skip
        total = int(mask[1].sum())  # the patch lengths of a sequence sum to its end
        if total == 0:
            raise BadInputError("entropy-patching: no positions to patch (empty sequences)")
        if not details:
            return total / int(mask[0].sum())
        p = _pack(*mask)
        info = {
            "start_ids": p.start_ids.cpu().numpy(),
            "patch_lengths": p.patch_lengths.cpu().numpy(),
            "num_patches": p.num_patches.cpu().numpy(),
            "thresholds": p.thresholds.cpu().numpy(),
            "patches": p,
        }
        return finish(total / int(p.num_patches.sum()), info, details)

    def _threshold_value(self, x: Any) -> float:
        """The value alone in threshold mode for full-length sequences: every sequence starts
        patches at 0 and 1 and after each t in [1, L + extra - 2] with H_t > threshold, so the
        patches are counted from one comparison instead of building the (B, L) start mask."""
        h = _entropies(x)
        b, big_l = h.shape
        if big_l == 0 or b == 0:
            raise BadInputError("entropies is empty: no positions to patch")
        size = big_l + int(self.include_next_token)
        cuts = int((h[:, 1 : size - 1] > self.threshold).sum())
        return b * size / (b * (1 + int(size > 1)) + cuts)
