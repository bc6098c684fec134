"""Chunked primitives of linear softmax cross-entropy: the (N, V) logits never exist at once.

For token ``i`` (row ``h_i`` of ``hidden``) and vocabulary row ``j`` (row ``w_j`` of
``classifier``) the logit is

    z_ij = c * tanh(s * (h_i . w_j + b_j) / c)        (softcap c; without it s * (h_i . w_j + b_j))

with ``s = logit_scale``. Every function here walks the tokens in chunks (and the vocabulary in
blocks when one row of logits is too large), so memory is ``O(chunk_elements)`` on top of the
inputs and the gradient buffers. Accumulation is in float32 (float64 when an input is float64).

The primitives other modules build on:

- :func:`softmax_stats`: per-token ``lse``, target logit, sum of logits and entropy (no grad);
- :func:`~xent_cce.torch.grads.softmax_grad`: gradients of ``sum_i [a_i * lse_i - b_i * z_i,y_i - c_i * sum_j z_ij]``
  w.r.t. hidden, classifier and bias, given ``lse`` (recomputes the logits: one more matmul);
- :func:`~xent_cce.torch.grads.fused_loss_and_grad`: the cross-entropy statistics AND the gradients in one sweep over
  full vocabulary rows (three ``N*V*D`` matmuls in all), for callers that know their per-token
  weights before the backward pass.

A vocabulary-parallel caller can run :func:`softmax_stats` on its shard (targets outside the shard
give a target logit of 0), combine ``lse`` across ranks, then call :func:`softmax_grad` with the
global ``lse``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..semantics import LogitMap

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "LinearGrads",
    "LogitMap",
    "SoftmaxStats",
    "compute_dtype",
    "plan_chunks",
    "softmax_stats",
]

#: Logits as computed: ``z = h . w + b`` (no scale, no softcap).
IDENTITY = LogitMap()
#: Elements of one chunk of logits (tokens x vocabulary); a few such buffers are alive at once.
DEFAULT_CHUNK_ELEMENTS = 1 << 24
#: Vocabulary columns per filtering block (a block is skipped when all its softmax entries < eps).
DEFAULT_FILTER_BLOCK = 1024
#: Fewest tokens per chunk before the vocabulary is split into blocks as well.
MIN_CHUNK_ROWS = 16

Rows = slice | torch.Tensor


@dataclass
class SoftmaxStats:
    """Per-token statistics of the softmax over the vocabulary (each (N,) or ``None``)."""

    lse: torch.Tensor
    target_logit: torch.Tensor | None = None
    logit_sum: torch.Tensor | None = None
    entropy: torch.Tensor | None = None


@dataclass
class LinearGrads:
    """Gradients w.r.t. hidden (N, D), classifier (V, D) and bias (V,), in the compute dtype."""

    hidden: torch.Tensor | None = None
    classifier: torch.Tensor | None = None
    bias: torch.Tensor | None = None


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 if any input is float64, else float32 (fp16/bf16 are computed in fp32)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def plan_chunks(n_tokens: int, vocab: int, chunk_elements: int) -> tuple[int, int]:
    """``(tokens per chunk, vocabulary columns per block)`` for a budget of logits elements."""
    budget = max(1, int(chunk_elements))
    rows = min(max(n_tokens, 1), max(MIN_CHUNK_ROWS, budget // max(vocab, 1)))
    block = min(vocab, max(1, budget // rows))
    return rows, block


def token_chunks(n_tokens: int, rows_per_chunk: int, rows: torch.Tensor | None) -> Iterator[Rows]:
    """Slices of ``range(n_tokens)`` (``rows is None``) or pieces of the index tensor ``rows``."""
    if rows is None:
        for start in range(0, n_tokens, rows_per_chunk):
            yield slice(start, min(start + rows_per_chunk, n_tokens))
    else:
        for start in range(0, rows.numel(), rows_per_chunk):
            yield rows[start : start + rows_per_chunk]


def _n_rows(n_tokens: int, rows: torch.Tensor | None) -> int:
    return n_tokens if rows is None else rows.numel()


class _Prepared:
    """Inputs cast once to the compute dtype; the logit scale folded into hidden rows and bias."""

    def __init__(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        lmap: LogitMap,
    ) -> None:
        self.dtype = compute_dtype(hidden, classifier, bias)
        self.hidden = hidden
        self.weight = classifier.to(self.dtype)
        self.scale = float(lmap.logit_scale)
        self.softcap = None if lmap.softcap is None else float(lmap.softcap)
        self.bias = None
        if bias is not None:
            b = bias.to(self.dtype)
            self.bias = b * self.scale if self.scale != 1.0 else b
        self.vocab = classifier.shape[0]
        self._weight_sum: torch.Tensor | None = None

    @property
    def weight_sum(self) -> torch.Tensor:
        """``sum_j w_j`` (D,), for the terms that are linear in all logits."""
        if self._weight_sum is None:
            self._weight_sum = self.weight.sum(0)
        return self._weight_sum

    def scaled_rows(self, rows: Rows) -> torch.Tensor:
        """``s * h[rows]`` in the compute dtype (a copy of one chunk at most)."""
        h = self.hidden[rows].to(self.dtype)
        return h * self.scale if self.scale != 1.0 else h

    def raw_into(self, out: torch.Tensor, hs: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``out = s * (h . w_j + b_j)`` for vocabulary rows ``start:stop``."""
        w = self.weight[start:stop]
        if self.bias is None:
            return torch.mm(hs, w.t(), out=out)
        return torch.addmm(self.bias[start:stop], hs, w.t(), out=out)

    def cap_(self, z: torch.Tensor, deriv: torch.Tensor | None = None) -> None:
        """Apply the softcap in place; write ``dz/d(s*raw) = 1 - tanh^2`` into ``deriv``."""
        if self.softcap is None:
            return
        z.div_(self.softcap).tanh_()
        if deriv is not None:
            torch.mul(z, z, out=deriv).neg_().add_(1.0)
        z.mul_(self.softcap)

    def target_logits(self, hs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``z_i,y_i`` for one chunk by gather-dot, O(chunk * D); 0 where y_i is out of range."""
        inside = (targets >= 0) & (targets < self.vocab)
        safe = torch.where(inside, targets, torch.zeros_like(targets))
        z = (hs * self.weight[safe]).sum(1)
        if self.bias is not None:
            z = z + self.bias[safe]
        if self.softcap is not None:
            z = self.softcap * torch.tanh(z / self.softcap)
        return torch.where(inside, z, torch.zeros_like(z))


def _buffer(rows: int, cols: int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(rows, cols, dtype=dtype, device=like.device)


# ------------------------------------------------------------------------------ statistics
def softmax_stats(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    lmap: LogitMap = IDENTITY,
    targets: torch.Tensor | None = None,
    logit_sum: bool = False,
    entropy: bool = False,
    rows: torch.Tensor | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> SoftmaxStats:
    """Per-token ``lse``, target logit, ``sum_j z_ij`` and entropy, without gradients.

    ``rows`` (int64 indices) restricts the work to those tokens; the others get 0. A target
    outside ``[0, V)`` gives a target logit of 0 (useful for vocabulary shards). Online
    log-sum-exp over vocabulary blocks when one row of logits exceeds the budget.
    """
    with torch.no_grad():
        prep = _Prepared(hidden, classifier, bias, lmap)
        n, v = hidden.shape[0], prep.vocab
        f, device = prep.dtype, hidden.device
        lse = torch.zeros(n, dtype=f, device=device)
        tgt = torch.zeros(n, dtype=f, device=device) if targets is not None else None
        lsum = torch.zeros(n, dtype=f, device=device) if logit_sum else None
        ent = torch.zeros(n, dtype=f, device=device) if entropy else None
        if v == 0:
            lse.fill_(-math.inf)
            return SoftmaxStats(lse, tgt, lsum, ent)
        per_chunk, block = plan_chunks(_n_rows(n, rows), v, chunk_elements)
        buf = _buffer(per_chunk, block, hidden, f)
        for r in token_chunks(n, per_chunk, rows):
            hs = prep.scaled_rows(r)
            m = hs.shape[0]
            run_lse = torch.full((m,), -math.inf, dtype=f, device=device)
            run_h = torch.zeros(m, dtype=f, device=device) if entropy else None
            run_sum = torch.zeros(m, dtype=f, device=device) if logit_sum else None
            for start in range(0, v, block):
                stop = min(start + block, v)
                z = prep.raw_into(buf[:m, : stop - start], hs, start, stop)
                prep.cap_(z)
                if run_sum is not None:
                    run_sum += z.sum(1)
                blk_lse = torch.logsumexp(z, 1)
                new_lse = torch.logaddexp(run_lse, blk_lse)
                if run_h is not None:
                    # Entropy as a sum of non-negative terms -p log p = p (lse - z), merged across
                    # blocks by H = sum_b w_b (H_b + L - L_b), w_b = exp(L_b - L): no cancellation
                    # of large logits against the lse, so peaked rows keep their precision.
                    p = torch.exp(z - blk_lse[:, None])
                    gap = torch.sub(blk_lse[:, None], z).mul_(p).masked_fill_(p == 0, 0.0)
                    blk_h = gap.sum(1)
                    old = torch.exp(run_lse - new_lse) * (run_h + (new_lse - run_lse))
                    run_h = torch.where(torch.isfinite(run_lse), old, 0.0) + torch.exp(
                        blk_lse - new_lse
                    ) * (blk_h + (new_lse - blk_lse))
                run_lse = new_lse
            lse[r] = run_lse
            if tgt is not None and targets is not None:
                tgt[r] = prep.target_logits(hs, targets[r])
            if lsum is not None and run_sum is not None:
                lsum[r] = run_sum
            if ent is not None and run_h is not None:
                ent[r] = run_h
        return SoftmaxStats(lse, tgt, lsum, ent)
