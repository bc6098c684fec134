"""dc-pdd: divergence-calibrated pretraining-data detection score (DC-PDD)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, validate

from ._common import finish, to_host
from ._detect import as_rows, check_logprobs, counts_per_row, row_mask, token_ids, unpack_moments


def reference_neg_log_freq(ref_counts: Any, smoothing: str = "laplace") -> np.ndarray:
    """``-log p'(v)`` (V,) in float64 from a token-count table, computed in log space.

    ``laplace``: ``p'(v) = (count(v) + 1) / (sum(count) + V)``; ``none``: ``count(v) /
    sum(count)`` (a zero count gives ``+inf``). Counts may be non-integer weights, never negative.
    """
    if ref_counts is None:
        raise BadInputError(
            "dc-pdd needs ref_counts: a (V,) token-count table of a reference corpus"
        )
    if isinstance(ref_counts, torch.Tensor):
        ref_counts = ref_counts.detach().cpu().double().numpy()
    try:
        c = np.asarray(ref_counts)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"ref_counts must be a (V,) array of counts: {exc}") from exc
    if c.dtype == object or c.dtype.kind not in "iuf":
        raise BadInputError(f"ref_counts must be numeric counts, got dtype {c.dtype}")
    c = c.astype(np.float64)
    if c.ndim != 1 or c.size == 0:
        raise BadInputError(f"ref_counts must have shape (V,) with V >= 1; got {c.shape}")
    if not np.isfinite(c).all() or (c < 0).any():
        raise BadInputError("ref_counts must be finite counts >= 0")
    if smoothing == "laplace":
        return np.asarray(math.log(c.sum() + c.size) - np.log1p(c), dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise BadInputError("ref_counts are all zero: the unsmoothed frequencies are undefined")
    with np.errstate(divide="ignore"):
        return np.asarray(math.log(total) - np.log(c), dtype=np.float64)


class DCPDD:
    """dc-pdd: divergence-calibrated pretraining-data detection score (larger: member).

    A document's tokens ``x_t`` with target probabilities ``p_t = P_M(x_t | x_<t)`` under the
    model are compared with a reference corpus's token frequencies ``p'`` (same tokenizer):

        p'(v)   = (count(v) + 1) / (sum_u count(u) + V)          (Laplace, smoothing='laplace')
        alpha_t = min(p_t * log(1 / p'(x_t)), a)
        beta    = mean of alpha_t over the first occurrence of each token id in the document

    and ``beta`` is the score: larger means more likely seen in pretraining (``sign=
    'nonmember-high'`` returns ``-beta``, the official code's convention). The smoothed
    frequencies are used in the score itself (the official script smooths, then indexes the raw
    counts, where an unseen token gives ``log(1/0)``). ``p'`` is kept as ``-log p'`` in float64.

    Call ``est(token_logprobs, token_ids, mask=None)``: (T,) for one document or (B, T) for B
    documents (``mask`` (B, T): True = a real token). Position ``t`` holds ``log p(x_t | x_<t)``
    and ``x_t`` (with a causal LM's logits for ``ids``: ``logits[:-1]`` and ``ids[1:]``). The
    output of the ``logprob-moments`` kernel is accepted as ``token_logprobs``. Returns the mean
    score over documents; ``details``: ``scores`` (B,), ``first_occurrences`` (B,),
    ``clipped`` (share of alpha clipped to ``a``). Cost: O(B T log(B T)) time, O(B T + V)
    memory, on the input's device in float64. Build ``ref_counts`` with
    ``xent_estimators.token_counts`` or ``xent_estimators.counts_from_files``.

    Args:
        ref_counts: (V,) token counts of the reference corpus (numpy or torch; index = token id).
        a: clipping threshold of alpha (default 0.01, the paper's; inf: no clipping).
        smoothing: 'laplace' (add one) or 'none' (raw frequencies; unseen tokens clip to a).
        sign: 'member-high' (beta) or 'nonmember-high' (-beta, the official code's sign).

    Citation: Zhang et al., "Pretraining Data Detection for Large Language Models: A
    Divergence-based Calibration Method" (arXiv:2409.14781).
    """

    citation = (
        (
            "Pretraining Data Detection for Large Language Models: A Divergence-based "
            "Calibration Method",
            "arXiv:2409.14781",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        ref_counts: Any,
        a: float = 0.01,
        smoothing: str = "laplace",
        sign: str = "member-high",
    ) -> None:
        self.a = validate.number("a", a, low=0.0, low_open=True, allow_inf=True)
        self.smoothing = validate.choice("smoothing", smoothing, ("laplace", "none"))
        self.sign = validate.choice("sign", sign, ("member-high", "nonmember-high"))
        self._neg_log_ref = reference_neg_log_freq(ref_counts, self.smoothing)
        self._on_device: dict[torch.device, torch.Tensor] = {}
        self.vocab_size = int(self._neg_log_ref.size)
        self.units = "nats"

    @staticmethod
    def example_inputs(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Target log-probs and token ids (< 8: any table of V >= 8) of one document."""
        logp = -3 * torch.rand(31, generator=generator, dtype=torch.float64)
        return logp, torch.randint(0, 8, (31,), generator=generator)

    def _table(self, device: torch.device) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = torch.from_numpy(self._neg_log_ref).to(device)
        return self._on_device[device]

    def __call__(self, x: Any, y: Any = None, *, mask: Any = None, details: bool = False) -> Any:
        logp_in, _, _ = unpack_moments(x)
        logp, _ = as_rows(logp_in, "token_logprobs")
        keep = row_mask(mask, logp.shape, logp.device)
        ids = token_ids(y, logp, keep)
        logp = check_logprobs(logp, keep)
        counts_per_row(keep)
        if int(ids.max()) >= self.vocab_size:
            raise BadInputError(
                f"token id {int(ids.max())} is outside the frequency table (V = "
                f"{self.vocab_size}): the table must come from the model's tokenizer"
            )
        b, t = logp.shape
        pos = torch.arange(b * t, device=logp.device).reshape(b, t)[keep]
        key = (torch.arange(b, device=logp.device)[:, None] * self.vocab_size + ids)[keep]
        uniq, inverse = torch.unique(key, return_inverse=True)
        first = torch.full((uniq.numel(),), b * t, dtype=torch.long, device=logp.device)
        # the first occurrence of each (document, id) pair
        first = first.scatter_reduce(0, inverse, pos, reduce="amin")
        rows = torch.div(first, t, rounding_mode="floor")
        neg_log_ref = self._table(logp.device)[ids.reshape(-1)[first]]
        p = logp.reshape(-1)[first].exp()
        # p > 0 always, so an unseen token under smoothing='none' gives inf, clipped to a
        alpha = (p * neg_log_ref).clamp_max(self.a)
        n_first = torch.bincount(rows, minlength=b)
        beta = torch.zeros(b, dtype=logp.dtype, device=logp.device).index_add_(0, rows, alpha)
        beta = beta / n_first.to(logp.dtype)
        scores = beta if self.sign == "member-high" else -beta
        info = {
            "scores": to_host(scores),
            "first_occurrences": n_first.cpu().numpy(),
            "clipped": float((alpha >= self.a).to(logp.dtype).mean()),
            "a": self.a,
            "sign": self.sign,
        }
        return finish(float(scores.mean()), info, details)
