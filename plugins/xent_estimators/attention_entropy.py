"""attention-entropy: row entropies of attention maps, from probabilities or from Q and K.

``attention_row_entropy`` reads given probabilities (..., Tq, Tk); ``attention_entropy_from_qk``
streams key blocks with an online (max, sum, weighted-sum) recurrence so the (Tq, Tk) map is
never formed; ``entropy_invariant_scale`` is the length-aware softmax scale that keeps attention
entropy roughly constant when the number of keys changes. The registered estimator wraps them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError, validate

from ._common import finish

#: |row sum - 1| allowed for given probabilities (bf16 rounding of a softmax stays well inside)
ROW_SUM_TOL = 1e-2


def entropy_invariant_scale(n: int, n_train: int, d: int) -> float:
    """Softmax scale ``sqrt(log n / log n_train) / sqrt(d)`` for ``n`` keys (trained with ``n_train``).

    Equal to the usual ``1/sqrt(d)`` at ``n = n_train``; larger for more keys, so the attention
    entropy (which grows like log n at a fixed scale) stays near its training value.

    Args:
        n: number of keys at inference (>= 1).
        n_train: number of keys at training (>= 2).
        d: head dimension (>= 1).
    """
    n = validate.integer("n", n, low=1)
    n_train = validate.integer("n_train", n_train, low=2)
    d = validate.integer("d", d, low=1)
    return math.sqrt(math.log(n) / math.log(n_train)) / math.sqrt(d)


def _float(x: Any, name: str) -> torch.Tensor:
    """A floating tensor computed in fp32 at least (float64 stays float64)."""
    if x is None:
        raise BadInputError(f"{name} is required")
    if not isinstance(x, torch.Tensor):
        import numpy as np

        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise BadInputError(f"{name} must be an array or tensor: {exc}") from exc
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise BadInputError(f"{name} must be numeric, got dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.is_complex():
        raise BadInputError(f"{name} must be real-valued")
    x = x.detach()
    return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def _key_mask(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
    """A bool mask (True = the key may be attended) broadcast to ``shape`` (..., Tq, Tk).

    A 2-D (B, Tk) padding mask (Hugging Face's ``attention_mask``) is read as (B, 1, 1, Tk)
    for inputs of 4 or more dims.
    """
    if mask is None:
        return None
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(mask)
    m = m.to(device)
    if m.dtype != torch.bool:
        if m.is_floating_point() and not bool(torch.isfinite(m).all()):
            raise BadInputError("mask must hold 0/1 or booleans (True = attend)")
        if not bool(((m == 0) | (m == 1)).all()):
            raise BadInputError("mask must hold 0/1 or booleans (True = attend)")
        m = m != 0
    if m.dim() == 2 and len(shape) >= 4 and tuple(m.shape) == (shape[-4], shape[-1]):
        m = m[:, None, None, :]
    try:
        return torch.broadcast_to(m, shape)
    except RuntimeError:
        raise BadInputError(
            f"mask of shape {tuple(m.shape)} does not broadcast to the attention shape {tuple(shape)}"
        ) from None


def _causal(tq: int, tk: int, device: torch.device) -> torch.Tensor:
    """(Tq, Tk) lower-triangular mask; query i sees keys j <= i + (Tk - Tq) (a KV-cache offset)."""
    i = torch.arange(tq, device=device)[:, None]
    j = torch.arange(tk, device=device)[None]
    return j <= i + (tk - tq)


def attention_row_entropy(
    attn: Any, *, mask: Any = None, causal: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row entropies ``-sum_j A_tj log A_tj`` of attention probabilities (..., Tq, Tk).

    Returns ``(entropy, valid, n_keys)`` of shape (..., Tq): nats (0 log 0 = 0), whether the row
    counts (it has an allowed key and is not an all-zero padding row), and its number of allowed
    keys. Masked keys (``mask`` False, or above the diagonal with ``causal``) must hold
    probability 0; rows must sum to 1 over the allowed keys.

    Args:
        attn: probabilities (..., Tq, Tk), at least 2-D; bf16/fp16 are computed in fp32.
        mask: optional bool/0-1 mask broadcastable to attn (True = attend), or (B, Tk).
        causal: also mask keys after each query (offset Tk - Tq).
    """
    causal = validate.flag("causal", causal)
    a = _float(attn, "attentions")
    if a.dim() < 2:
        raise BadInputError(f"attentions must be (..., Tq, Tk); got shape {tuple(a.shape)}")
    if a.numel() == 0:
        raise BadInputError(f"attentions is empty (shape {tuple(a.shape)})")
    lo, hi = torch.aminmax(a)
    if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
        raise BadInputError("attentions contain NaN or inf")
    if bool(lo < 0) or bool(hi > 1 + ROW_SUM_TOL):
        raise BadInputError("attentions must be probabilities in [0, 1]")
    allowed = _key_mask(mask, a.shape, a.device)
    if causal:
        c = _causal(a.shape[-2], a.shape[-1], a.device)
        allowed = c.expand(a.shape) if allowed is None else allowed & c
    if allowed is not None and bool((a.masked_fill(allowed, 0) > 0).any()):
        raise BadInputError("masked keys must have probability 0 (mask them before the softmax)")
    total = a.sum(dim=-1)
    n_keys = (
        allowed.sum(dim=-1)
        if allowed is not None
        else torch.full(total.shape, a.shape[-1], device=a.device)
    )
    valid = (total > 0) & (n_keys > 0)
    if bool(((total - 1).abs() > ROW_SUM_TOL)[valid].any()):
        raise BadInputError(
            "attention rows must sum to 1 (probabilities after the softmax); an all-zero row is "
            "read as a padding query"
        )
    h = -torch.special.xlogy(a, a).sum(dim=-1)
    return h, valid, n_keys


def attention_entropy_from_qk(
    q: Any,
    k: Any,
    *,
    scale: float | None = None,
    mask: Any = None,
    causal: bool = False,
    block_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row entropies of ``softmax(scale * q k^T)`` over key blocks, without the (Tq, Tk) map.

    Per query row and key block, with scores s: ``m`` (running max), ``l = sum e^{s-m}`` and
    ``w = sum e^{s-m} (s-m)``; merging rescales by ``e^{m_old - m_new}``, and at the end
    ``H = log l - w / l``. Masked scores are -inf (probability 0, no NaN). Memory
    O(Tq * block_size) per leading index. Returns ``(entropy, valid, n_keys)`` as
    :func:`attention_row_entropy`.

    Args:
        q: queries (..., Tq, d).
        k: keys (..., Tk, d), leading dims broadcastable with q's.
        scale: score scale (default 1/sqrt(d)).
        mask: optional mask broadcastable to (..., Tq, Tk) (True = attend), or (B, Tk).
        causal: mask keys after each query (offset Tk - Tq).
        block_size: keys per block.
    """
    causal = validate.flag("causal", causal)
    block_size = validate.integer("block_size", block_size, low=1)
    qt, kt = _float(q, "queries"), _float(k, "keys")
    if qt.dim() < 2 or kt.dim() < 2 or qt.shape[-1] != kt.shape[-1]:
        raise BadInputError(
            f"queries (..., Tq, d) and keys (..., Tk, d) need the same d; got {tuple(qt.shape)} "
            f"and {tuple(kt.shape)}"
        )
    if qt.numel() == 0 or kt.numel() == 0:
        raise BadInputError("queries or keys are empty")
    for name, t in (("queries", qt), ("keys", kt)):
        lo, hi = torch.aminmax(t)
        if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
            raise BadInputError(f"{name} contain NaN or inf")
    dtype = torch.promote_types(qt.dtype, kt.dtype)
    qt, kt = qt.to(dtype), kt.to(dtype)
    kt = kt.to(qt.device)
    s = 1.0 / math.sqrt(qt.shape[-1]) if scale is None else validate.positive("scale", scale)
    try:
        lead = torch.broadcast_shapes(qt.shape[:-2], kt.shape[:-2])
    except RuntimeError:
        raise BadInputError(
            f"queries {tuple(qt.shape)} and keys {tuple(kt.shape)}: leading dims do not broadcast"
        ) from None
    tq, tk = qt.shape[-2], kt.shape[-2]
    shape = torch.Size((*lead, tq, tk))
    allowed = _key_mask(mask, shape, qt.device)
    m = torch.full((*lead, tq), -math.inf, dtype=dtype, device=qt.device)
    l_sum = torch.zeros_like(m)
    w_sum = torch.zeros_like(m)
    n_keys = torch.zeros((*lead, tq), dtype=torch.int64, device=qt.device)
    rows = torch.arange(tq, device=qt.device)[:, None] + (tk - tq)
    for start in range(0, tk, block_size):
        stop = min(start + block_size, tk)
        sc = (qt @ kt[..., start:stop, :].transpose(-1, -2)) * s  # (..., Tq, blk)
        ok = torch.ones(sc.shape, dtype=torch.bool, device=sc.device)
        if allowed is not None:
            ok = ok & allowed[..., start:stop]
        if causal:
            ok = ok & (torch.arange(start, stop, device=sc.device)[None] <= rows)
        sc = sc.masked_fill(~ok, -math.inf)
        n_keys += ok.sum(dim=-1)
        m_new = torch.maximum(m, sc.amax(dim=-1))
        seen = torch.isfinite(m_new)
        m_safe = torch.where(seen, m_new, torch.zeros_like(m_new))
        # rescale the running sums (a row without any key so far keeps zeros)
        decay = torch.where(torch.isfinite(m), torch.exp(m - m_safe), torch.zeros_like(m))
        w_sum = decay * (w_sum + (m.nan_to_num(neginf=0.0) - m_safe) * l_sum)
        l_sum = decay * l_sum
        diff = sc - m_safe[..., None]
        e = torch.where(ok, torch.exp(diff), torch.zeros_like(diff))
        l_sum = l_sum + e.sum(dim=-1)
        w_sum = w_sum + torch.where(ok, e * diff, torch.zeros_like(diff)).sum(dim=-1)
        m = m_new
    valid = n_keys > 0
    h = torch.where(valid, l_sum.clamp_min(1e-300).log() - w_sum / l_sum.clamp_min(1e-300), 0.0)
    return h.clamp_min(0.0), valid, n_keys


def _per_head(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over rows (and the batch axis, dim -3 of (..., B, H, Tq)) of valid rows."""
    w = valid.to(h.dtype)
    dims: tuple[int, ...] = (-1, -3) if h.dim() >= 3 else (-1,)
    return (h * w).sum(dim=dims) / w.sum(dim=dims).clamp_min(1)


class AttentionEntropy:
    """attention-entropy: mean row entropy of attention maps (nats), from A or from Q and K.

    For each query row t with allowed keys K_t (mask, causal),

        H_t = -sum_{j in K_t} A_tj log A_tj,          (0 log 0 = 0)

    averaged over the rows that have a key (all-zero padding rows of A are skipped). With
    ``normalized=True`` each row is divided by ``log |K_t|`` (rows with one key are skipped), so a
    uniform row is 1 at any length. ``est(attn)`` reads probabilities (..., Tq, Tk), e.g. a
    model's ``output_attentions`` (B, H, Tq, Tk) or a stacked (L, B, H, Tq, Tk); ``est(q, k)``
    computes the entropy of ``softmax(scale * q k^T)`` from queries (..., Tq, d) and keys
    (..., Tk, d) in key blocks with the online form ``H = log l - w/l``
    (``l = sum e^{s-m}``, ``w = sum e^{s-m}(s-m)``), never forming the map. ``mask=`` (keyword)
    is broadcastable to (..., Tq, Tk) or a (B, Tk) padding mask; masked keys get probability 0
    exactly (given probabilities must already be 0 there). bf16/fp16 are computed in fp32.
    ``details``: ``per_row`` (..., Tq) entropies (NaN on skipped rows), ``per_head`` (the mean
    over the batch axis and rows, e.g. (H,) or (L, H)), ``max_entropy`` (mean log |K_t|).
    Cost O(numel(A)) for probabilities; O(Tq Tk d) time and O(Tq block_size) memory from Q, K.
    ``entropy_invariant_scale(n, n_train, d)`` gives the scale that keeps this entropy near its
    training value when the number of keys changes.

    Args:
        causal: mask keys after each query (offset Tk - Tq for a KV cache).
        normalized: divide each row by log(number of allowed keys).
        scale: softmax scale of the Q, K path (default None: 1/sqrt(d)).
        block_size: keys per block on the Q, K path.

    Citations: Jha and Reagen, "Entropy-Guided Attention for Private LLMs" (arXiv:2501.03489);
    Jin et al., "Training-free Diffusion Model Adaptation for Variable-Sized Text-to-Image
    Synthesis" (arXiv:2306.08645).
    """

    citation = (
        ("Entropy-Guided Attention for Private LLMs", "arXiv:2501.03489"),
        ("Training-free Diffusion Model Adaptation for Variable-Sized Text-to-Image Synthesis", "arXiv:2306.08645"),
    )  # fmt: skip
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        causal: bool = False,
        normalized: bool = False,
        scale: float | None = None,
        block_size: int = 1024,
    ) -> None:
        self.causal = validate.flag("causal", causal)
        self.normalized = validate.flag("normalized", normalized)
        self.scale = validate.optional(validate.positive, "scale", scale)
        self.block_size = validate.integer("block_size", block_size, low=1)
        self.units = "nats"

    @staticmethod
    def example_inputs(generator: torch.Generator) -> tuple[torch.Tensor]:
        """Attention probabilities (3, 2, 5, 7) of random scores, for the sweep."""
        return (
            torch.softmax(torch.randn(3, 2, 5, 7, generator=generator, dtype=torch.float64), -1),
        )

    def __call__(self, x: Any, y: Any = None, *, mask: Any = None, details: bool = False) -> Any:
        if y is None:
            h, valid, n_keys = attention_row_entropy(x, mask=mask, causal=self.causal)
        else:
            h, valid, n_keys = attention_entropy_from_qk(
                x, y, scale=self.scale, mask=mask, causal=self.causal, block_size=self.block_size
            )
        hmax = n_keys.clamp_min(1).to(h.dtype).log()
        if self.normalized:
            valid = valid & (n_keys > 1)
            h = h / hmax.clamp_min(1e-300)
        if not bool(valid.any()):
            raise BadInputError("attention-entropy: no row with an allowed key (all masked?)")
        w = valid.to(h.dtype)
        value = float((h * w).sum() / w.sum())
        info = {
            "per_row": torch.where(valid, h, torch.nan).cpu().numpy(),
            "per_head": _per_head(h, valid).cpu().numpy(),
            "max_entropy": float((hmax * w).sum() / w.sum()),
        }
        return finish(value, info, details)
