"""Gradients of the chunked linear softmax: :func:`softmax_grad` and :func:`fused_loss_and_grad`.

Both walk token chunks (and vocabulary blocks) as :mod:`xent_cce.torch.chunked` does, turn each
block of probabilities into ``dz`` in place and add its products into the gradients of hidden,
classifier and bias. Vocabulary blocks whose probabilities all fall below ``filter_eps`` are left
out of the matmuls (:func:`kept_ranges`).
"""

from __future__ import annotations

import torch

from ..semantics import LogitMap
from .chunked import (
    DEFAULT_CHUNK_ELEMENTS,
    DEFAULT_FILTER_BLOCK,
    IDENTITY,
    LinearGrads,
    Rows,
    SoftmaxStats,
    _buffer,
    _n_rows,
    _Prepared,
    plan_chunks,
    token_chunks,
)

__all__ = ["fused_fits", "fused_loss_and_grad", "kept_ranges", "softmax_grad"]


def _softmax_(z: torch.Tensor) -> torch.Tensor:
    """Row softmax, in place on the CPU (one fused pass per row, no new (chunk, V) buffer).

    PyTorch's CPU kernel finishes each row's max and sum before writing it, so the output may
    alias the input (checked by the tests); on other devices a new tensor is returned.
    """
    if z.device.type == "cpu":
        return torch.ops.aten._softmax.out(z, 1, False, out=z)
    return torch.softmax(z, dim=1)


def kept_ranges(
    probs: torch.Tensor,
    eps: float | None,
    block: int = DEFAULT_FILTER_BLOCK,
    force: torch.Tensor | None = None,
) -> list[tuple[int, int]]:
    """Column ranges of ``probs`` to keep in the gradient matmuls.

    A block of ``block`` columns is dropped when every probability in it is below ``eps`` and no
    column in ``force`` (the targets of the chunk: their one-hot entry is -1) falls in it.
    Consecutive kept blocks are merged so the matmuls stay large.
    """
    v = probs.shape[1]
    if eps is None or eps <= 0 or v == 0:
        return [(0, v)]
    full = v // block
    parts = []
    if full:
        parts.append(probs[:, : full * block].unflatten(1, (full, block)).amax(dim=(0, 2)))
    if v % block:
        parts.append(probs[:, full * block :].amax().reshape(1))
    keep = torch.cat(parts) >= eps
    if force is not None and force.numel():
        keep[torch.div(force, block, rounding_mode="floor")] = True
    out: list[tuple[int, int]] = []
    for k, kept in enumerate(keep.tolist()):
        if not kept:
            continue
        lo, hi = k * block, min((k + 1) * block, v)
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class _ChunkGrad:
    """How the gradient of one token chunk is formed from its probability blocks.

    ``dz_ij = (a_i p_ij - b_i [j = y_i] - c_i) * d_ij`` with ``d = 1 - tanh^2`` under softcap
    (1 otherwise). Unless softcap is on (or some ``a_i`` is 0 while ``b_i`` is not), the row
    scale ``a`` stays out of the (chunk, V) block: the one-hot is folded in as ``-b/a``, and ``a``
    is applied to ``O(chunk * D)`` operands; the uniform ``c`` part is a rank-one update.
    """

    def __init__(
        self,
        hs: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor | None,
        y: torch.Tensor | None,
        c: torch.Tensor | None,
        capped: bool,
        need_w: bool,
        vocab: int,
        a_positive: bool = False,
        targets_inside: bool = False,
    ) -> None:
        """``a_positive``: no ``a_i`` is 0; ``targets_inside``: every ``y_i`` is in [0, V)."""
        self.hs, self.a, self.b, self.y, self.c, self.capped = hs, a, b, y, c, capped
        self.vocab, self.targets_inside = vocab, targets_inside
        self.dh_acc: torch.Tensor | None = None  # the chunk's dz @ W (a view of dh when possible)
        self.dh_in_place = False
        self.dh_written = False
        zero_a = b is not None and not a_positive and bool(((a == 0) & (b != 0)).any())
        self.scaled = capped or zero_a
        self.dense_uniform = capped and c is not None
        if self.scaled:
            self.lhs = hs
            self.fold = b
        else:
            self.lhs = hs * a[:, None] if need_w else hs
            # a_i = 0 implies b_i = 0 here (else ``scaled``): that row contributes nothing
            self.fold = None if b is None else torch.where(a != 0, b / a, torch.zeros_like(b))

    def form_(self, probs: torch.Tensor, deriv: torch.Tensor | None, start: int) -> torch.Tensor:
        """Turn the probabilities of columns ``start:start+width`` into ``dz`` (in place)."""
        width = probs.shape[1]
        if self.scaled:
            probs.mul_(self.a[:, None])
            if self.dense_uniform:
                assert self.c is not None
                probs.sub_(self.c[:, None])
            if deriv is not None:
                probs.mul_(deriv)
        if self.fold is not None and self.y is not None:
            if self.targets_inside and start == 0 and width == self.vocab:
                idx = None
            else:
                inside = (self.y >= start) & (self.y < start + width)
                idx = inside.nonzero().squeeze(1) if not bool(inside.all()) else None
            rows = torch.arange(probs.shape[0], device=probs.device) if idx is None else idx
            cols = (self.y if idx is None else self.y[idx]) - start
            amount = self.fold if idx is None else self.fold[idx]
            if deriv is not None:
                amount = amount * deriv[rows, cols]
            probs.index_put_((rows, cols), -amount, accumulate=True)
        return probs

    def local_targets(self, start: int, width: int) -> torch.Tensor | None:
        if self.y is None:
            return None
        inside = (self.y >= start) & (self.y < start + width)
        return self.y[inside] - start


class _GradSink:
    """Accumulates the gradients of ``sum_i [a_i lse_i - b_i z_iy - c_i sum_j z_ij]``."""

    def __init__(
        self,
        prep: _Prepared,
        n_tokens: int,
        need: tuple[bool, bool, bool],
        filter_eps: float | None,
        filter_block: int,
        all_rows: bool,
    ) -> None:
        self.prep = prep
        device = prep.weight.device
        f = prep.dtype
        need_h, need_w, need_b = need
        d = prep.weight.shape[1]
        if need_h:
            make = torch.empty if all_rows else torch.zeros
            self.dh: torch.Tensor | None = make(n_tokens, d, dtype=f, device=device)
        else:
            self.dh = None
        self.dw = torch.zeros_like(prep.weight, dtype=f) if need_w else None
        self.db = (
            torch.zeros(prep.vocab, dtype=f, device=device)
            if need_b and prep.bias is not None
            else None
        )
        self.filter_eps = filter_eps
        self.filter_block = filter_block
        self._uniform_h: torch.Tensor | None = None  # sum_i c_i * s h_i   (D,)
        self._uniform_b: torch.Tensor | None = None  # sum_i c_i           ()

    def any(self) -> bool:
        return self.dh is not None or self.dw is not None or self.db is not None

    def chunk(
        self,
        rows: Rows,
        hs: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor | None,
        y: torch.Tensor | None,
        c: torch.Tensor | None,
        **known: bool,
    ) -> _ChunkGrad:
        capped = self.prep.softcap is not None
        cg = _ChunkGrad(hs, a, b, y, c, capped, self.dw is not None, self.prep.vocab, **known)
        if self.dh is not None:
            if isinstance(rows, slice):
                cg.dh_acc, cg.dh_in_place = self.dh[rows], True
            else:
                cg.dh_acc = torch.empty(hs.shape, dtype=self.dh.dtype, device=self.dh.device)
        return cg

    def add_block(
        self,
        cg: _ChunkGrad,
        probs: torch.Tensor,
        deriv: torch.Tensor | None,
        start: int,
    ) -> None:
        """Add the block of columns ``start:start+width`` of the chunk ``cg``."""
        w = self.prep.weight
        eps = None if cg.dense_uniform else self.filter_eps
        force = cg.local_targets(start, probs.shape[1]) if eps else None
        ranges = kept_ranges(probs, eps, self.filter_block, force)
        g_all = cg.form_(probs, deriv, start)
        single = len(ranges) == 1 and ranges[0] == (0, probs.shape[1])
        for lo, hi in ranges:
            g = g_all if single else g_all[:, lo:hi]
            cols = slice(start + lo, start + hi)
            if cg.dh_acc is not None:
                if cg.dh_written:
                    cg.dh_acc.addmm_(g, w[cols])
                else:
                    torch.mm(g, w[cols], out=cg.dh_acc)
                    cg.dh_written = True
            if self.dw is not None:
                self.dw[cols].addmm_(g.t(), cg.lhs)
            if self.db is not None:
                self.db[cols].add_(g.sum(0) if cg.scaled else g.t() @ cg.a)

    def finish_chunk(self, cg: _ChunkGrad, rows: Rows) -> None:
        prep = self.prep
        uniform = cg.c is not None and not cg.dense_uniform
        dh_acc = cg.dh_acc
        if dh_acc is not None and self.dh is not None:
            if not cg.dh_written:
                dh_acc.zero_()
            if not cg.scaled:
                dh_acc.mul_(cg.a[:, None])
            if uniform:
                assert cg.c is not None
                dh_acc.sub_(cg.c[:, None] * prep.weight_sum)
            if prep.scale != 1.0:
                dh_acc.mul_(prep.scale)
            if not cg.dh_in_place:
                self.dh[rows] = dh_acc
        if uniform:
            assert cg.c is not None
            uh = cg.c @ cg.hs
            ub = cg.c.sum()
            self._uniform_h = uh if self._uniform_h is None else self._uniform_h + uh
            self._uniform_b = ub if self._uniform_b is None else self._uniform_b + ub

    def result(self) -> LinearGrads:
        if self._uniform_h is not None:
            if self.dw is not None:
                self.dw.sub_(self._uniform_h[None, :])
            if self.db is not None:
                self.db.sub_(self._uniform_b)
        if self.db is not None and self.prep.scale != 1.0:
            self.db.mul_(self.prep.scale)
        return LinearGrads(self.dh, self.dw, self.db)


# ------------------------------------------------------------------------------ gradients
def softmax_grad(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    lse: torch.Tensor,
    *,
    softmax_weight: torch.Tensor,
    targets: torch.Tensor | None = None,
    target_weight: torch.Tensor | None = None,
    uniform_weight: torch.Tensor | None = None,
    lmap: LogitMap = IDENTITY,
    need: tuple[bool, bool, bool] = (True, True, True),
    filter_eps: float | None = None,
    filter_block: int = DEFAULT_FILTER_BLOCK,
    rows: torch.Tensor | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> LinearGrads:
    """Gradients of ``sum_i [a_i lse_i - b_i z_i,y_i - c_i sum_j z_ij]`` from a known ``lse``.

    ``a = softmax_weight``, ``b = target_weight`` (with ``targets``; targets outside ``[0, V)``
    contribute nothing), ``c = uniform_weight``, each (N,). So ``dz_ij = a_i p_ij - b_i [j=y_i] -
    c_i`` with ``p_ij = exp(z_ij - lse_i)``; the logits are recomputed chunk by chunk. Blocks of
    the vocabulary whose probabilities are all below ``filter_eps`` are skipped. ``need`` selects
    (hidden, classifier, bias) gradients. Returned in the compute dtype.
    """
    with torch.no_grad():
        prep = _Prepared(hidden, classifier, bias, lmap)
        n, v = hidden.shape[0], prep.vocab
        f = prep.dtype
        sink = _GradSink(prep, n, need, filter_eps, filter_block, rows is None)
        if not sink.any() or v == 0:
            return sink.result()
        capped = prep.softcap is not None
        per_chunk, block = plan_chunks(_n_rows(n, rows), v, chunk_elements)
        buf = _buffer(per_chunk, block, hidden, f)
        dbuf = _buffer(per_chunk, block, hidden, f) if capped else None
        lse_f = lse.to(f)
        for r in token_chunks(n, per_chunk, rows):
            hs = prep.scaled_rows(r)
            m = hs.shape[0]
            a = softmax_weight[r].to(f)
            c = None if uniform_weight is None else uniform_weight[r].to(f)
            b, y = None, None
            if targets is not None and target_weight is not None:
                y_all = targets[r]
                inside = (y_all >= 0) & (y_all < v)
                y = torch.where(inside, y_all, torch.full_like(y_all, -1))
                b = torch.where(
                    inside, target_weight[r].to(f), torch.zeros((), dtype=f, device=y.device)
                )
            cg = sink.chunk(r, hs, a, b, y, c)
            row_lse = lse_f[r]
            for start in range(0, v, block):
                stop = min(start + block, v)
                z = prep.raw_into(buf[:m, : stop - start], hs, start, stop)
                deriv = dbuf[:m, : stop - start] if dbuf is not None else None
                prep.cap_(z, deriv)
                probs = z.sub_(row_lse[:, None]).exp_()
                sink.add_block(cg, probs, deriv, start)
            sink.finish_chunk(cg, r)
        return sink.result()


# ------------------------------------------------------------------------------ fused
def fused_fits(n_tokens: int, vocab: int, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> bool:
    """Whether whole vocabulary rows fit the chunk budget (the fused path needs them)."""
    return plan_chunks(n_tokens, vocab, chunk_elements)[1] == vocab


def fused_loss_and_grad(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    token_weight: torch.Tensor,
    *,
    lmap: LogitMap = IDENTITY,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    need: tuple[bool, bool, bool] = (True, True, True),
    filter_eps: float | None = None,
    filter_block: int = DEFAULT_FILTER_BLOCK,
    rows: torch.Tensor | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[SoftmaxStats, LinearGrads]:
    """Cross-entropy statistics and gradients in one sweep (three ``N*V*D`` matmuls in all).

    The per-token loss is ``l_i = lse_i - (1 - eps) z_i,y_i - (eps / V) sum_j z_ij +
    lambda lse_i^2``; the gradients are those of ``sum_i token_weight_i * l_i``. ``targets`` must
    be in ``[0, V)`` on the processed ``rows``. Needs whole vocabulary rows per chunk
    (:func:`fused_fits`); otherwise use :func:`softmax_stats` then :func:`softmax_grad`.
    """
    with torch.no_grad():
        prep = _Prepared(hidden, classifier, bias, lmap)
        n, v = hidden.shape[0], prep.vocab
        f, device = prep.dtype, hidden.device
        per_chunk, block = plan_chunks(_n_rows(n, rows), v, chunk_elements)
        if block != v:
            raise ValueError("fused_loss_and_grad needs whole vocabulary rows per chunk")
        sink = _GradSink(prep, n, need, filter_eps, filter_block, rows is None)
        capped = prep.softcap is not None
        eps_ls = float(label_smoothing)
        lse = torch.zeros(n, dtype=f, device=device)
        tgt = torch.zeros(n, dtype=f, device=device)
        lsum = torch.zeros(n, dtype=f, device=device) if eps_ls else None
        buf = _buffer(per_chunk, v, hidden, f)
        dbuf = _buffer(per_chunk, v, hidden, f) if capped and sink.any() else None
        tiny = torch.finfo(f).tiny * 2**16
        for r in token_chunks(n, per_chunk, rows):
            hs = prep.scaled_rows(r)
            y = targets[r]
            m = hs.shape[0]
            z = prep.raw_into(buf[:m], hs, 0, v)
            deriv = dbuf[:m] if dbuf is not None else None
            prep.cap_(z, deriv)
            zy = z.gather(1, y[:, None]).squeeze(1)
            if lsum is not None:
                if capped:
                    lsum[r] = z.sum(1)
                else:
                    s_b = prep.bias.sum() if prep.bias is not None else 0.0
                    lsum[r] = hs @ prep.weight_sum + s_b
            probs = _softmax_(z)
            py = probs.gather(1, y[:, None]).squeeze(1)
            row_lse = zy - torch.log(py)
            bad = py < tiny
            if bool(bad.any()):  # p_y underflowed: recompute those rows' log-sum-exp exactly
                idx = bad.nonzero().squeeze(1)
                zb = prep.raw_into(_buffer(idx.numel(), v, hidden, f), hs[idx], 0, v)
                prep.cap_(zb)
                row_lse[idx] = torch.logsumexp(zb, 1)
            lse[r] = row_lse
            tgt[r] = zy
            if not sink.any():
                continue
            w = token_weight[r].to(f)
            a = w * (1.0 + 2.0 * z_loss * row_lse) if z_loss else w
            c = w * (eps_ls / v) if eps_ls else None
            cg = sink.chunk(
                r, hs, a, w * (1.0 - eps_ls), y, c, a_positive=not z_loss, targets_inside=True
            )
            sink.add_block(cg, probs, deriv, 0)
            sink.finish_chunk(cg, r)
        return SoftmaxStats(lse, tgt, lsum), sink.result()
