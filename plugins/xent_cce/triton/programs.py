"""Triton programs of the ``cce-triton`` kernel and their launch configurations.

Two programs, after "Cut Your Losses in Large-Vocabulary Language Models" (Wijmans et al.,
arXiv:2411.09009):

``_stats_kernel`` (forward)
    one program per (token block, vocabulary split). It walks the vocabulary blocks of its split,
    forms each logit tile ``y = cap(scale * (h @ c.T + b))`` with an fp32 ``tl.dot`` loop over
    ``D`` and folds it into an online log-sum-exp per token (running max ``m`` and sum ``s``),
    kept on chip. Optionally, in the same pass: the target logit (gather of the tile column that
    equals the target), the sum of logits (label smoothing) and ``sum_j exp(y_j - m) * y_j``
    (entropy). It writes ``S x N`` partial statistics, never a logit.

``_grad_kernel`` (backward)
    one program per (token block, vocabulary block). It recomputes the logit tile, forms
    ``g_n * (fa_n * softmax - fb * onehot - fc)`` on the fly from the saved log-sum-exp, applies
    the softcap and scale chain rule, and adds ``dy @ c`` to ``d_hidden`` and ``dy.T @ h`` to
    ``d_classifier`` with atomics, ``D`` chunk by chunk. A tile whose every unscaled gradient
    entry ``|fa_n * p - fb * onehot - fc|`` is below ``filter_eps`` skips both products.

Softcap uses ``tanh(x) = sign(x) * (1 - e) / (1 + e)`` with ``e = exp(-2|x|)``: no libdevice call
and no overflow, so the Triton interpreter runs it. Row offsets are int64.

On a GPU both programs are autotuned over a few configurations keyed on ``D`` (one fixed
configuration with XENT_TRITON_AUTOTUNE=0, and for float64); under
``TRITON_INTERPRET=1`` one small fixed configuration is used (the interpreter loops in Python).
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

#: True when the programs below run in the Triton interpreter (decided when this module loads).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

#: fixed block sizes in the interpreter (the smallest ``tl.dot`` accepts is 16)
INTERPRET_STATS_CONFIG = {"BM": 32, "BN": 64, "BK": 32}
INTERPRET_GRAD_CONFIG = {"BM": 32, "BN": 64, "BK": 32, "BD": 32}


@triton.jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit
def _load_tile(ptr, rows, row_mask, cols, col_mask, stride_r, stride_c):
    """The (len(rows), len(cols)) tile at ``ptr + rows * stride_r + cols * stride_c``, 0 outside."""
    return tl.load(
        ptr + rows[:, None] * stride_r + cols[None, :] * stride_c,
        mask=row_mask[:, None] & col_mask[None, :],
        other=0.0,
    )


@triton.jit
def _add_tile(ptr, rows, row_mask, cols, col_mask, stride_r, value):
    """Atomically add ``value`` to the tile at ``ptr + rows * stride_r + cols`` (row-major)."""
    tl.atomic_add(
        ptr + rows[:, None] * stride_r + cols[None, :],
        value.to(ptr.dtype.element_ty),
        mask=row_mask[:, None] & col_mask[None, :],
    )


@triton.jit
def _logit_tile(
    h_ptr,
    c_ptr,
    b_ptr,
    rows64,
    row_mask,
    cols64,
    col_mask,
    D,
    stride_hn,
    stride_hd,
    stride_cv,
    stride_cd,
    scale,
    softcap,
    HAS_BIAS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
):
    """Logits of one (BM tokens x BN classes) tile, accumulated in ``ACC`` precision."""
    acc = tl.zeros((BM, BN), dtype=ACC)
    ks = tl.arange(0, BK)
    for k0 in range(0, D, BK):
        kk = k0 + ks
        k_mask = kk < D
        a = _load_tile(h_ptr, rows64, row_mask, kk, k_mask, stride_hn, stride_hd)
        b = _load_tile(c_ptr, kk, k_mask, cols64, col_mask, stride_cd, stride_cv)  # (BK, BN)
        acc = tl.dot(a, b, acc, input_precision=PREC, out_dtype=ACC)
    if HAS_BIAS:
        bias = tl.load(b_ptr + cols64, mask=col_mask, other=0.0).to(ACC)
        acc = acc + bias[None, :]
    y = acc * scale
    if SOFTCAP:
        y = softcap * _tanh(y / softcap)
    return y


def _stats_kernel_body(
    h_ptr,
    c_ptr,
    b_ptr,
    t_ptr,
    m_out,
    s_out,
    tgt_out,
    sum_out,
    ent_out,
    N,
    V,
    D,
    n_splits,
    stride_hn,
    stride_hd,
    stride_cv,
    stride_cd,
    scale,
    softcap,
    HAS_BIAS: tl.constexpr,
    HAS_TARGETS: tl.constexpr,
    HAS_SUM: tl.constexpr,
    HAS_ENTROPY: tl.constexpr,
    SOFTCAP: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    row_mask = rows < N
    rows64 = rows.to(tl.int64)

    n_blocks = tl.cdiv(V, BN)
    per_split = tl.cdiv(n_blocks, n_splits)
    blk_lo = pid_s * per_split
    blk_hi = tl.minimum(blk_lo + per_split, n_blocks)

    m_i = tl.full((BM,), float("-inf"), dtype=ACC)
    s_i = tl.zeros((BM,), dtype=ACC)
    tgt_i = tl.zeros((BM,), dtype=ACC)
    sum_i = tl.zeros((BM,), dtype=ACC)
    ent_i = tl.zeros((BM,), dtype=ACC)
    if HAS_TARGETS:
        tgt = tl.load(t_ptr + rows64, mask=row_mask, other=-1).to(tl.int64)

    for blk in range(blk_lo, blk_hi):
        cols64 = tl.arange(0, BN).to(tl.int64) + blk * BN
        col_mask = cols64 < V
        y = _logit_tile(
            h_ptr,
            c_ptr,
            b_ptr,
            rows64,
            row_mask,
            cols64,
            col_mask,
            D,
            stride_hn,
            stride_hd,
            stride_cv,
            stride_cd,
            scale,
            softcap,
            HAS_BIAS,
            SOFTCAP,
            BM,
            BN,
            BK,
            ACC,
            PREC,
        )
        y_zero = tl.where(col_mask[None, :], y, 0.0)
        y = tl.where(col_mask[None, :], y, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(y, axis=1))
        alpha = tl.exp(m_i - m_new)
        e = tl.exp(y - m_new[:, None])
        s_i = s_i * alpha + tl.sum(e, axis=1)
        if HAS_ENTROPY:
            ent_i = ent_i * alpha + tl.sum(e * y_zero, axis=1)
        if HAS_SUM:
            sum_i += tl.sum(y_zero, axis=1)
        if HAS_TARGETS:
            hit = cols64[None, :] == tgt[:, None]
            tgt_i += tl.sum(tl.where(hit, y_zero, 0.0), axis=1)
        m_i = m_new

    out = pid_s.to(tl.int64) * N + rows64
    tl.store(m_out + out, m_i, mask=row_mask)
    tl.store(s_out + out, s_i, mask=row_mask)
    if HAS_TARGETS:
        tl.store(tgt_out + out, tgt_i, mask=row_mask)
    if HAS_SUM:
        tl.store(sum_out + out, sum_i, mask=row_mask)
    if HAS_ENTROPY:
        tl.store(ent_out + out, ent_i, mask=row_mask)


def _grad_kernel_body(
    h_ptr,
    c_ptr,
    b_ptr,
    t_ptr,
    lse_ptr,
    g_ptr,
    fa_ptr,
    dh_ptr,
    dc_ptr,
    db_ptr,
    N,
    V,
    D,
    v_lo,
    v_hi,
    dc_row0,
    stride_hn,
    stride_hd,
    stride_cv,
    stride_cd,
    stride_dhn,
    stride_dcv,
    scale,
    softcap,
    fbc_ptr,
    filter_eps,
    HAS_BIAS: tl.constexpr,
    HAS_TARGETS: tl.constexpr,
    SOFTCAP: tl.constexpr,
    COMPUTE_DH: tl.constexpr,
    COMPUTE_DC: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    BD: tl.constexpr,
):
    # one flat grid, token blocks fastest: neighbouring programs share a classifier tile in L2
    pid = tl.program_id(0)
    m_blocks = tl.cdiv(N, BM)
    pid_m = pid % m_blocks
    pid_n = pid // m_blocks
    rows = pid_m * BM + tl.arange(0, BM)
    row_mask = rows < N
    rows64 = rows.to(tl.int64)
    cols64 = v_lo + pid_n.to(tl.int64) * BN + tl.arange(0, BN)
    col_mask = cols64 < v_hi

    y = _logit_tile(
        h_ptr,
        c_ptr,
        b_ptr,
        rows64,
        row_mask,
        cols64,
        col_mask,
        D,
        stride_hn,
        stride_hd,
        stride_cv,
        stride_cd,
        scale,
        softcap,
        HAS_BIAS,
        SOFTCAP,
        BM,
        BN,
        BK,
        ACC,
        PREC,
    )
    lse = tl.load(lse_ptr + rows64, mask=row_mask, other=0.0).to(ACC)
    g = tl.load(g_ptr + rows64, mask=row_mask, other=0.0).to(ACC)
    fa = tl.load(fa_ptr + rows64, mask=row_mask, other=0.0).to(ACC)
    # fb, fc come through memory in the accumulation dtype: a float scalar argument would be
    # rounded to fp32, which is visible in an fp64 gradient with label smoothing
    fb = tl.load(fbc_ptr).to(ACC)
    fc = tl.load(fbc_ptr + 1).to(ACC)
    p = tl.exp(y - lse[:, None])
    gy = fa[:, None] * p - fc
    if HAS_TARGETS:
        tgt = tl.load(t_ptr + rows64, mask=row_mask, other=-1).to(tl.int64)
        gy = gy - tl.where(cols64[None, :] == tgt[:, None], fb, 0.0)
    live = (row_mask & (g != 0.0))[:, None] & col_mask[None, :]
    gy = tl.where(live, gy, 0.0)

    biggest = tl.max(tl.max(tl.abs(gy), axis=1), axis=0)
    if (biggest >= filter_eps) & (biggest > 0.0):
        dy = gy * g[:, None]
        if SOFTCAP:
            yc = y / softcap
            dy = dy * (1.0 - yc * yc)
        dy = dy * scale
        if COMPUTE_DB:
            tl.atomic_add(
                db_ptr + cols64,
                tl.sum(dy, axis=0).to(db_ptr.dtype.element_ty),
                mask=col_mask,
            )
        dy_in = dy.to(h_ptr.dtype.element_ty)
        ds = tl.arange(0, BD)
        for d0 in range(0, D, BD):
            dd = d0 + ds
            d_mask = dd < D
            if COMPUTE_DH:
                c_blk = _load_tile(c_ptr, cols64, col_mask, dd, d_mask, stride_cv, stride_cd)
                dh = tl.dot(dy_in, c_blk, input_precision=PREC, out_dtype=ACC)
                _add_tile(dh_ptr, rows64, row_mask, dd, d_mask, stride_dhn, dh)
            if COMPUTE_DC:
                h_blk = _load_tile(h_ptr, rows64, row_mask, dd, d_mask, stride_hn, stride_hd)
                dc = tl.dot(tl.trans(dy_in), h_blk, input_precision=PREC, out_dtype=ACC)
                _add_tile(dc_ptr, cols64 - dc_row0, col_mask, dd, d_mask, stride_dcv, dc)


def _stats_configs() -> list[triton.Config]:
    return [
        triton.Config({"BM": 128, "BN": 128, "BK": 64}, num_warps=8, num_stages=3),
        triton.Config({"BM": 128, "BN": 256, "BK": 64}, num_warps=8, num_stages=3),
        triton.Config({"BM": 64, "BN": 128, "BK": 64}, num_warps=4, num_stages=4),
        triton.Config({"BM": 128, "BN": 128, "BK": 32}, num_warps=4, num_stages=4),
    ]


def _grad_configs() -> list[triton.Config]:
    return [
        triton.Config({"BM": 128, "BN": 128, "BK": 64, "BD": 64}, num_warps=8, num_stages=3),
        triton.Config({"BM": 64, "BN": 128, "BK": 64, "BD": 64}, num_warps=4, num_stages=3),
        triton.Config({"BM": 128, "BN": 64, "BK": 64, "BD": 64}, num_warps=4, num_stages=3),
        triton.Config({"BM": 128, "BN": 128, "BK": 32, "BD": 128}, num_warps=8, num_stages=2),
    ]


#: argument names the backward adds into (zeroed between autotuning trials)
GRAD_OUTPUTS = ("dh_ptr", "dc_ptr", "db_ptr")

#: XENT_TRITON_AUTOTUNE=0 uses one fixed configuration on the GPU too (quick compiles for tests)
AUTOTUNE = not INTERPRET and os.environ.get("XENT_TRITON_AUTOTUNE", "1") != "0"
#: the fixed GPU configurations (also used for float64, whose tiles the tuned ones do not fit)
GPU_STATS_CONFIG = {"BM": 64, "BN": 64, "BK": 32, "num_warps": 4, "num_stages": 2}
GPU_GRAD_CONFIG = {"BM": 64, "BN": 64, "BK": 32, "BD": 32, "num_warps": 4, "num_stages": 2}

stats_jit = triton.jit(_stats_kernel_body)
grad_jit = triton.jit(_grad_kernel_body)
stats_tuned = triton.autotune(configs=_stats_configs(), key=["D"])(stats_jit) if AUTOTUNE else None
grad_tuned = (
    triton.autotune(configs=_grad_configs(), key=["D"], reset_to_zero=list(GRAD_OUTPUTS))(grad_jit)
    if AUTOTUNE
    else None
)


def pick(kind: str, wide_accumulator: bool) -> tuple[object, dict | None]:
    """The program of ``kind`` (``"stats"`` or ``"grad"``) and its fixed configuration, or
    ``None`` when the autotuner chooses it."""
    jit, tuned = (stats_jit, stats_tuned) if kind == "stats" else (grad_jit, grad_tuned)
    if INTERPRET:
        return jit, dict(INTERPRET_STATS_CONFIG if kind == "stats" else INTERPRET_GRAD_CONFIG)
    if tuned is None or wide_accumulator:
        return jit, dict(GPU_STATS_CONFIG if kind == "stats" else GPU_GRAD_CONFIG)
    return tuned, None
