"""Host side of ``cce-triton``: launches, the merge of partial statistics, autograd functions.

Forward: :func:`row_stats` runs the statistics program over (token block x vocabulary split) and
merges the ``S x N`` partial maxima and sums into the per-token log-sum-exp (plus the target
logit, the sum of logits and the entropy when asked). Only ``O(S * N)`` floats are allocated.

Backward: :func:`row_grads` runs the gradient program over (token block x vocabulary block).
``d_hidden`` and the bias gradient accumulate in fp32 buffers; for fp16/bf16 classifiers the
classifier gradient accumulates in an fp32 buffer of a bounded number of rows (``chunk_rows``,
about 64 MiB) that is copied into the gradient after each vocabulary chunk, so no ``V x D`` fp32
copy is ever held. ``accumulate="input"`` instead adds straight into buffers of the input dtype
(the least memory, at the cost of rounding every atomic addition).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..semantics import LinearCEOptions, LogitMap, reduce_tokens, token_losses, token_weights
from . import programs as K

#: bytes of the fp32 classifier-gradient chunk buffer (fp16/bf16 classifiers, accumulate="fp32")
CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Launch:
    """How the kernel instance launches its programs (not an option of the loss).

    ``accumulate``: ``"fp32"`` or ``"input"`` (see the module docstring); ``n_splits``: forward
    vocabulary splits (None: enough to fill the device); ``chunk_rows``: rows of the fp32
    classifier-gradient chunk buffer (None: about 64 MiB).
    """

    accumulate: str = "fp32"
    n_splits: int | None = None
    chunk_rows: int | None = None


@dataclass
class RowStats:
    """Per-token statistics of the logit rows (each ``(N,)``)."""

    lse: torch.Tensor
    target_logit: torch.Tensor | None = None
    logit_sum: torch.Tensor | None = None
    entropy: torch.Tensor | None = None


def _acc_types(dtype: torch.dtype, device: torch.device) -> tuple[torch.dtype, object, str]:
    """Accumulation dtype (torch and triton) and ``tl.dot`` input precision for ``dtype``."""
    if dtype == torch.float64:
        return torch.float64, tl.float64, "ieee"
    if dtype == torch.float32:
        tf32 = device.type == "cuda" and not K.INTERPRET and torch.backends.cuda.matmul.allow_tf32
        return torch.float32, tl.float32, "tf32" if tf32 else "ieee"
    return torch.float32, tl.float32, "tf32"


def _default_splits(n: int, v: int, device: torch.device) -> int:
    """Vocabulary splits of the forward pass: enough programs to fill the device."""
    if K.INTERPRET or device.type != "cuda":
        return 2
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    token_blocks = triton.cdiv(n, 128)
    return max(1, min(triton.cdiv(v, 128), triton.cdiv(4 * sms, token_blocks)))


def _launch(kind: str, wide: bool, grid, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Launch the ``kind`` program with its fixed configuration, or let the autotuner pick one.

    ``grid(meta)`` maps a configuration (block sizes) to the launch grid. Returns the program.
    """
    kernel, fixed = K.pick(kind, wide)
    if fixed is not None:
        kernel[grid(fixed)](*args, **kwargs, **fixed)
    else:
        kernel[grid](*args, **kwargs)
    return kernel


def row_stats(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor | None,
    lmap: LogitMap,
    launch: Launch = Launch(),
    *,
    want_sum: bool = False,
    want_entropy: bool = False,
) -> RowStats:
    """Per-token log-sum-exp (and optional extras) of ``cap(scale * (hidden @ classifier.T + bias))``."""
    n, d = hidden.shape
    v = classifier.shape[0]
    acc_torch, acc_tl, prec = _acc_types(hidden.dtype, hidden.device)
    if n == 0:
        empty = hidden.new_zeros((0,), dtype=acc_torch)
        return RowStats(lse=empty, target_logit=empty, logit_sum=empty, entropy=empty)
    splits = launch.n_splits or _default_splits(n, v, hidden.device)
    want_target = targets is not None
    fields = 2 + int(want_target) + int(want_sum) + int(want_entropy)
    part = torch.empty((fields, splits, n), dtype=acc_torch, device=hidden.device)
    slots = iter(range(2, fields))
    tgt_slot = next(slots) if want_target else 0
    sum_slot = next(slots) if want_sum else 0
    ent_slot = next(slots) if want_entropy else 0
    softcap = float(lmap.softcap) if lmap.softcap else 1.0
    with torch.cuda.device(hidden.device) if hidden.is_cuda else nullcontext():
        _launch(
            "stats",
            acc_torch == torch.float64,
            lambda meta: (triton.cdiv(n, meta["BM"]), splits),
            hidden,
            classifier,
            bias if bias is not None else classifier,
            targets if targets is not None else hidden,
            part[0],
            part[1],
            part[tgt_slot],
            part[sum_slot],
            part[ent_slot],
            n,
            v,
            d,
            splits,
            hidden.stride(0),
            hidden.stride(1),
            classifier.stride(0),
            classifier.stride(1),
            float(lmap.logit_scale),
            softcap,
            HAS_BIAS=bias is not None,
            HAS_TARGETS=want_target,
            HAS_SUM=want_sum,
            HAS_ENTROPY=want_entropy,
            SOFTCAP=bool(lmap.softcap),
            ACC=acc_tl,
            PREC=prec,
        )
    m, s = part[0], part[1]
    top = m.amax(dim=0)
    weight = torch.exp(m - top)
    total = (s * weight).sum(dim=0)
    out = RowStats(lse=top + torch.log(total))
    if want_target:
        out.target_logit = part[tgt_slot].sum(dim=0)
    if want_sum:
        out.logit_sum = part[sum_slot].sum(dim=0)
    if want_entropy:
        out.entropy = out.lse - (part[ent_slot] * weight).sum(dim=0) / total
    return out


def _chunk_rows(v: int, d: int, launch: Launch) -> int:
    if launch.chunk_rows:
        return max(1, min(v, launch.chunk_rows))
    rows = max(256, (CHUNK_BYTES // (4 * d)) // 256 * 256)
    return min(v, rows)


def row_grads(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor | None,
    lse: torch.Tensor,
    g: torch.Tensor,
    fa: torch.Tensor,
    lmap: LogitMap,
    launch: Launch = Launch(),
    *,
    fb: float,
    fc: float,
    need: tuple[bool, bool, bool],
    filter_eps: float = 0.0,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``sum_n g_n * L_n`` where ``dL_n/dy_nj = fa_n p_nj - fb [j = t_n] - fc``.

    ``need`` says which of (hidden, classifier, bias) gradients to form; tiles whose entries are
    all below ``filter_eps`` are skipped.
    """
    n, d = hidden.shape
    v = classifier.shape[0]
    dev = hidden.device
    acc_torch, acc_tl, prec = _acc_types(hidden.dtype, dev)
    need_dh, need_dc, need_db = need[0], need[1], need[2] and bias is not None
    low_precision = hidden.dtype in (torch.float16, torch.bfloat16)
    in_place = launch.accumulate == "input" and low_precision
    buf_dtype = hidden.dtype if in_place else acc_torch
    dummy = torch.empty(1, dtype=buf_dtype, device=dev)
    dh = torch.zeros((n, d), dtype=buf_dtype, device=dev) if need_dh else dummy
    db = torch.zeros((v,), dtype=acc_torch, device=dev) if need_db else dummy
    chunked = need_dc and low_precision and not in_place
    if not need_dc:
        dc_out, rows = None, v
    elif chunked:
        dc_out = torch.empty_like(classifier) if n > 0 else torch.zeros_like(classifier)
        rows = _chunk_rows(v, d, launch)
    else:
        dc_out = torch.zeros((v, d), dtype=buf_dtype, device=dev)
        rows = v
    dc = torch.zeros((rows, d), dtype=acc_torch, device=dev) if chunked else dc_out
    softcap = float(lmap.softcap) if lmap.softcap else 1.0
    fbc = torch.tensor([fb, fc], dtype=acc_torch, device=dev)
    wide = acc_torch == torch.float64
    tuned_kernel, fixed = K.pick("grad", wide)
    cache = getattr(tuned_kernel, "cache", None) if fixed is None else None

    with torch.cuda.device(dev) if hidden.is_cuda else nullcontext():
        for v_lo in range(0, v if n > 0 else 0, rows):
            v_hi = min(v, v_lo + rows)
            if chunked and v_lo > 0:
                dc.zero_()

            def grid(meta: dict, v_lo: int = v_lo, v_hi: int = v_hi) -> tuple[int]:
                return (triton.cdiv(n, meta["BM"]) * triton.cdiv(v_hi - v_lo, meta["BN"]),)

            def launch(v_lo: int = v_lo, v_hi: int = v_hi, grid=grid) -> None:  # type: ignore[no-untyped-def]
                _launch(
                    "grad",
                    wide,
                    grid,
                    hidden,
                    classifier,
                    bias if bias is not None else classifier,
                    targets if targets is not None else hidden,
                    lse,
                    g,
                    fa,
                    dh,
                    dc if dc is not None else dummy,
                    db,
                    n,
                    v,
                    d,
                    v_lo,
                    v_hi,
                    v_lo if chunked else 0,
                    hidden.stride(0),
                    hidden.stride(1),
                    classifier.stride(0),
                    classifier.stride(1),
                    d,
                    d,
                    float(lmap.logit_scale),
                    softcap,
                    fbc,
                    float(filter_eps),
                    HAS_BIAS=bias is not None,
                    HAS_TARGETS=targets is not None,
                    SOFTCAP=bool(lmap.softcap),
                    COMPUTE_DH=need_dh,
                    COMPUTE_DC=need_dc,
                    COMPUTE_DB=need_db,
                    ACC=acc_tl,
                    PREC=prec,
                )

            tuned_before = len(cache) if cache is not None else 0
            launch()
            if cache is not None and len(cache) > tuned_before:
                # The autotuner just ran every configuration on these buffers: start again clean.
                for buf in (dh, dc, db):
                    if buf is not None:
                        buf.zero_()
                launch()
            if chunked:
                dc_out[v_lo:v_hi].copy_(dc[: v_hi - v_lo])

    grad_h = dh.to(hidden.dtype) if need_dh else None
    grad_c = dc_out if need_dc else None
    grad_b = db.to(bias.dtype) if need_db and bias is not None else None
    return grad_h, grad_c, grad_b


class LinearCrossEntropyFunction(torch.autograd.Function):
    """Cross-entropy of ``cap(scale * (hidden @ classifier.T + bias))``; saves only the LSE."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        opts: LinearCEOptions,
        launch: Launch = Launch(),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ls = opts.label_smoothing
        st = row_stats(hidden, classifier, bias, targets, opts, launch, want_sum=ls > 0)
        valid = targets != opts.ignore_index
        assert st.target_logit is not None
        per_token = token_losses(
            st.lse,
            st.target_logit,
            st.logit_sum,
            valid,
            vocab=classifier.shape[0],
            label_smoothing=ls,
            z_loss=opts.z_loss,
        )
        loss = reduce_tokens(per_token, valid, opts.reduction)
        ctx.opts, ctx.launch = opts, launch
        ctx.save_for_backward(hidden, classifier, bias, targets, st.lse, valid)
        lse_out = st.lse.detach().clone()
        ctx.mark_non_differentiable(lse_out)
        return loss, lse_out

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_lse: torch.Tensor | None):  # type: ignore[override]
        hidden, classifier, bias, targets, lse, valid = ctx.saved_tensors
        opts: LinearCEOptions = ctx.opts
        v = classifier.shape[0]
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        if not any(need):
            return None, None, None, None, None, None
        g = token_weights(valid, opts.reduction, lse.dtype) * grad_loss.to(lse.dtype)
        g = g.expand(lse.shape).contiguous()
        fa = 1.0 + 2.0 * opts.z_loss * lse
        # the uniform smoothing term -eps/V sits in every entry: skipping the tiles where it is
        # below filter_eps drops it over most of the vocabulary, a systematic d_hidden error of
        # about eps * mean_j(w_j); keep every tile (cce-torch adds that term exactly instead)
        filter_eps = 0.0 if opts.label_smoothing > 0 else opts.filter_for(hidden.dtype)
        dh, dc, db = row_grads(
            hidden,
            classifier,
            bias,
            targets,
            lse,
            g,
            fa.contiguous(),
            opts,
            ctx.launch,
            fb=1.0 - opts.label_smoothing,
            fc=opts.label_smoothing / v,
            need=need,
            filter_eps=filter_eps,
        )
        return dh, dc, db, None, None, None


class LogSumExpFunction(torch.autograd.Function):
    """Per-token log-sum-exp of ``cap(scale * (hidden @ classifier.T + bias))``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        lmap: LogitMap,
        launch: Launch = Launch(),
    ) -> torch.Tensor:
        lse = row_stats(hidden, classifier, bias, None, lmap, launch).lse
        ctx.lmap, ctx.launch = lmap, launch
        ctx.save_for_backward(hidden, classifier, bias, lse)
        return lse

    @staticmethod
    def backward(ctx, grad_lse: torch.Tensor):  # type: ignore[override]
        hidden, classifier, bias, lse = ctx.saved_tensors
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        if not any(need):
            return None, None, None, None, None
        dh, dc, db = row_grads(
            hidden,
            classifier,
            bias,
            None,
            lse,
            grad_lse.to(lse.dtype).contiguous(),
            torch.ones_like(lse),
            ctx.lmap,
            ctx.launch,
            fb=0.0,
            fc=0.0,
            need=need,
        )
        return dh, dc, db, None, None
