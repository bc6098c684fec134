"""``logprob-moments``: per-token target log-prob, entropy and variance of log p, chunked.

For token ``i`` with logits ``z_i`` (as in :mod:`xent_cce.torch.chunked`: scale, bias, softcap),
``p = softmax(z_i)``, ``L = logsumexp(z_i)`` and ``mu = sum_j p_j z_j``:

    log p(y_i)  = z_iy - L
    H_i         = -sum_j p_j log p_j = L - mu
    Var_i       = sum_j p_j (log p_j)^2 - (sum_j p_j log p_j)^2 = sum_j p_j (z_j - mu)^2

(``log p`` and ``z`` differ by the constant ``L``, so their variances agree.) The vocabulary is
walked in blocks; each block gives its own (mass, mean, variance) relative to its largest logit,
and blocks are merged with the pairwise (Chan et al.) update: no ``E[z^2] - E[z]^2``
cancellation, and no loss to a large shared offset of the logits. Memory is ``O(chunk_elements)``; the (N, V)
logits never exist.

Gradients (recomputing the logits chunk by chunk in backward), with ``d_j = z_j - mu``:

    d log p(y) / dz_j = [j = y] - p_j
    dH / dz_j         = -p_j d_j
    dVar / dz_j       = p_j (d_j^2 + 2 d_j - Var)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from xent_core import BadInputError, validate

from ..inputs import prepare_inputs
from ..semantics import LogitMap
from .chunked import _buffer, _Prepared, plan_chunks, token_chunks
from .kernel import CCETorchKernel

#: Logits elements per chunk: 2^22 (16 MiB in fp32); a handful of such temporaries are alive.
DEFAULT_CHUNK_ELEMENTS = 1 << 22

__all__ = ["LogprobMoments", "LogprobMomentsKernel", "logprob_moments"]


class LogprobMoments(NamedTuple):
    """Per-token results, each shaped like ``hidden.shape[:-1]``."""

    logp_target: torch.Tensor | None
    entropy: torch.Tensor
    var_logp: torch.Tensor


class _Running:
    """Per-token running summary of the vocabulary blocks seen so far, in a shifted frame.

    ``m`` (running max logit), ``s = sum_j exp(z_j - m)``, ``mean = E_p[z] - m`` and ``var =
    Var_p[z]``: everything but ``m`` is a small number, so ``H = log s - mean`` and ``log p(y) =
    (z_y - m) - log s`` lose nothing to large logits (a shared offset of 3000 in fp32 included).
    """

    def __init__(self, rows: int, dtype: torch.dtype, device: torch.device) -> None:
        self.m = torch.full((rows,), -math.inf, dtype=dtype, device=device)
        self.s = torch.zeros(rows, dtype=dtype, device=device)
        self.mean = torch.zeros(rows, dtype=dtype, device=device)
        self.var = torch.zeros(rows, dtype=dtype, device=device)

    def add(self, z: torch.Tensor) -> None:
        """Merge one block of logits (rows, cols) by the pairwise (Chan et al.) update."""
        m_b = z.amax(1)
        c = z - m_b[:, None]
        e = torch.exp(c)
        s_b = e.sum(1)
        mean_b = (e * c).sum(1) / s_b
        var_b = (e * (c - mean_b[:, None]).square()).sum(1) / s_b
        m = torch.maximum(self.m, m_b)
        seen = torch.isfinite(self.m)
        a = torch.where(seen, self.s * torch.exp(self.m - m), torch.zeros_like(s_b))
        b = s_b * torch.exp(m_b - m)
        total = a + b
        wa, wb = a / total, b / total
        mean_a = torch.where(seen, self.mean + (self.m - m), torch.zeros_like(mean_b))
        mean_b = mean_b + (m_b - m)
        delta = mean_b - mean_a
        self.mean = wa * mean_a + wb * mean_b
        self.var = wa * self.var + wb * var_b + wa * wb * delta.square()
        self.m, self.s = m, total


def _stats(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor | None,
    lmap: LogitMap,
    chunk_elements: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(lse, mu, entropy, var, logp_target)`` per token (N,), compute dtype, no grad."""
    with torch.no_grad():
        prep = _Prepared(hidden, classifier, bias, lmap)
        n, v, f, device = hidden.shape[0], prep.vocab, prep.dtype, hidden.device
        lse, mu, ent, var = (torch.zeros(n, dtype=f, device=device) for _ in range(4))
        logp = torch.zeros(n, dtype=f, device=device) if targets is not None else None
        per_chunk, block = plan_chunks(n, v, chunk_elements)
        buf = _buffer(per_chunk, block, hidden, f)
        for r in token_chunks(n, per_chunk, None):
            hs = prep.scaled_rows(r)
            run = _Running(hs.shape[0], f, device)
            for start in range(0, v, block):
                stop = min(start + block, v)
                z = prep.raw_into(buf[: hs.shape[0], : stop - start], hs, start, stop)
                prep.cap_(z)
                run.add(z)
            log_s = torch.log(run.s)
            lse[r], mu[r] = run.m + log_s, run.m + run.mean
            ent[r], var[r] = log_s - run.mean, run.var
            if logp is not None and targets is not None:
                logp[r] = (prep.target_logits(hs, targets[r]) - run.m) - log_s
        return lse, mu, ent, var, logp


class _Moments(torch.autograd.Function):
    """``(logp_target, entropy, var)`` from hidden states; backward recomputes the logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        valid: torch.Tensor,
        lmap: LogitMap,
        chunk_elements: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lse, mu, ent, var, logp = _stats(hidden, classifier, bias, targets, lmap, chunk_elements)
        assert logp is not None
        logp = torch.where(valid, logp, torch.zeros_like(logp))
        ctx.save_for_backward(hidden, classifier, bias, targets, valid, lse, mu, var)
        ctx.lmap, ctx.chunk_elements = lmap, chunk_elements
        return logp, ent, var

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_logp: Any, g_ent: Any, g_var: Any) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, classifier, bias, targets, valid, lse, mu, var = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        prep = _Prepared(hidden, classifier, bias, ctx.lmap)
        n, v, f = hidden.shape[0], prep.vocab, prep.dtype
        zeros = torch.zeros(n, dtype=f, device=hidden.device)
        gt = zeros if g_logp is None else torch.where(valid, g_logp.to(f), zeros)
        gh = zeros if g_ent is None else g_ent.to(f)
        gv = zeros if g_var is None else g_var.to(f)
        dh = torch.zeros(n, classifier.shape[1], dtype=f, device=hidden.device) if need_h else None
        dw = torch.zeros_like(prep.weight) if need_w else None
        db = torch.zeros(v, dtype=f, device=hidden.device) if need_b and bias is not None else None
        per_chunk, block = plan_chunks(n, v, ctx.chunk_elements)
        buf = _buffer(per_chunk, block, hidden, f)
        dbuf = _buffer(per_chunk, block, hidden, f) if prep.softcap is not None else None
        with torch.no_grad():
            for r in token_chunks(n, per_chunk, None):
                hs = prep.scaled_rows(r)
                m = hs.shape[0]
                for start in range(0, v, block):
                    stop = min(start + block, v)
                    z = prep.raw_into(buf[:m, : stop - start], hs, start, stop)
                    deriv = dbuf[:m, : stop - start] if dbuf is not None else None
                    prep.cap_(z, deriv)
                    p = torch.exp(z - lse[r][:, None])
                    d = z.sub_(mu[r][:, None])
                    poly = gv[r][:, None] * (d * d + 2.0 * d - var[r][:, None])
                    dz = p * (poly - gh[r][:, None] * d - gt[r][:, None])
                    y = targets[r] - start
                    hit = valid[r] & (y >= 0) & (y < stop - start)
                    rows = hit.nonzero().squeeze(1)
                    dz[rows, y[rows]] += gt[r][rows]
                    if deriv is not None:
                        dz.mul_(deriv)
                    w = prep.weight[start:stop]
                    if dh is not None:
                        dh[r] += dz @ w
                    if dw is not None:
                        dw[start:stop] += dz.t() @ hs
                    if db is not None:
                        db[start:stop] += dz.sum(0)
        if dh is not None and prep.scale != 1.0:
            dh.mul_(prep.scale)
        if db is not None and prep.scale != 1.0:
            db.mul_(prep.scale)
        return (
            None if dh is None else dh.to(hidden.dtype),
            None if dw is None else dw.to(classifier.dtype),
            None if db is None or bias is None else db.to(bias.dtype),
            None,
            None,
            None,
            None,
        )


def logprob_moments(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    targets: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    ignore_index: int = -100,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    check_inputs: bool = True,
) -> LogprobMoments:
    """Target log-prob, entropy and variance of ``log p`` per token, without (N, V) logits.

    ``hidden`` (..., D), ``classifier`` (V, D), optional ``targets`` (...) int ids and ``bias``
    (V,); logits ``z = softcap * tanh(logit_scale * (hidden @ classifier.T + bias) / softcap)``.
    Returns :class:`LogprobMoments`, each shaped like ``targets`` (fp32; fp64 for fp64 inputs),
    differentiable w.r.t. hidden, classifier and bias. ``logp_target`` is None without targets
    and 0 at ``ignore_index``. Min-K%++ uses ``mu = -entropy`` and ``sigma = sqrt(var_logp)``.
    """
    softcap = validate.optional(validate.positive, "softcap", softcap)
    logit_scale = validate.positive("logit_scale", logit_scale)
    ignore_index = validate.integer("ignore_index", ignore_index)
    chunk_elements = validate.integer("chunk_elements", chunk_elements, low=1)
    if not isinstance(hidden, torch.Tensor) or hidden.dim() < 2:
        raise BadInputError("logprob-moments: hidden must be a (N, D) or (B, T, D) tensor")
    given = targets is not None
    if targets is None:
        targets = torch.full(
            hidden.shape[:-1], ignore_index, dtype=torch.long, device=hidden.device
        )
    flat = prepare_inputs(
        hidden,
        classifier,
        targets,
        bias,
        ignore_index=ignore_index,
        check_values=validate.flag("check_inputs", check_inputs),
    )
    valid = flat.targets != ignore_index
    lmap = LogitMap(logit_scale, softcap)
    if flat.hidden.shape[0] == 0:
        f = torch.float64 if flat.hidden.dtype == torch.float64 else torch.float32
        empty = torch.zeros(flat.lead_shape, dtype=f, device=flat.hidden.device)
        return LogprobMoments(empty if given else None, empty, empty.clone())
    logp, ent, var = _Moments.apply(
        flat.hidden, flat.classifier, flat.bias, flat.targets, valid, lmap, chunk_elements
    )
    shape = flat.lead_shape
    return LogprobMoments(
        logp.reshape(shape) if given else None, ent.reshape(shape), var.reshape(shape)
    )


class LogprobMomentsKernel(CCETorchKernel):
    """Per-token target log-prob, entropy and variance of log p from hidden states, chunked.

    For logits ``z`` of a linear head (``hidden @ classifier.T + bias``, then ``logit_scale``
    and ``softcap`` as in ``linear-cross-entropy``), ``p = softmax(z)`` and ``L = logsumexp(z)``:
    ``log p(y) = z_y - L``, ``H = L - sum_j p_j z_j`` and ``Var[log p] = sum_j p_j (z_j -
    sum_k p_k z_k)^2``. One pass over vocabulary blocks; each block's (log-mass, mean, variance)
    is merged pairwise, so the variance has no ``E[z^2] - E[z]^2`` cancellation. The (N, V)
    logits are never formed; results are differentiable (backward recomputes the logits).
    Min-K%++ scores a token by ``(log p(y) + H) / sqrt(Var)``.

    Call it as ``kernel(hidden, classifier, targets=None, bias=None, *, softcap=None,
    logit_scale=1.0, ignore_index=-100)`` (or ``kernel.logprob_moments(...)``); it returns
    ``(logp_target, entropy, var_logp)``, each shaped like ``hidden.shape[:-1]``. It is a
    ``cce-torch`` kernel otherwise (``linear_cross_entropy``, ``logsumexp``, ``token_entropy``).

    Args:
        chunk_elements: logits elements per chunk (2^22: 16 MiB per fp32 buffer, a handful
            of them alive at once).
        filter_block: vocabulary columns per gradient-filtering block (``cce-torch``'s).

    Citation: Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from
    Large Language Models", arXiv:2404.02936; Wijmans et al., "Cut Your Losses in
    Large-Vocabulary Language Models", arXiv:2411.09009.
    """

    citation = (
        (
            "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language "
            "Models",
            "arXiv:2404.02936",
        ),
        ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009"),
    )
    capabilities = {
        "differentiable": True,
        "devices": ("cpu", "cuda"),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
    }

    def __init__(self, chunk_elements: int = 4194304, filter_block: int = 1024) -> None:
        super().__init__(chunk_elements=chunk_elements, filter_block=filter_block)

    def logprob_moments(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        **params: Any,
    ) -> LogprobMoments:
        """See :func:`logprob_moments` (``chunk_elements`` is this kernel's)."""
        return logprob_moments(
            hidden, classifier, targets, bias, chunk_elements=self.chunk_elements, **params
        )

    __call__ = logprob_moments
