"""The ``cce-triton`` programs compile for real GPUs (no GPU needed).

The interpreter runs the programs' Python; it does not exercise Triton's compiler, which is
stricter (types carried through loops, constexpr branches, atomics on 16-bit pointers). Here a
subprocess with TRITON_INTERPRET=0 compiles both programs ahead of time to a cubin for sm_90
(H100) and sm_80 (A100) with Triton's bundled NVIDIA backend, in bf16 with every optional path
switched on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from xent_cce.triton import programs as K

    def compile(fn, types, consts, arch):
        sig = {n: "constexpr" if n in consts else types[n] for n in fn.arg_names}
        src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts)
        return triton.compile(src, target=GPUTarget("cuda", arch, 32))

    p, a = "*bf16", "*fp32"
    ints = dict(N="i32", V="i32", D="i32", stride_hn="i32", stride_hd="i32",
                stride_cv="i32", stride_cd="i32")
    stats = dict(ints, h_ptr=p, c_ptr=p, b_ptr=p, t_ptr="*i64", m_out=a, s_out=a, tgt_out=a,
                 sum_out=a, ent_out=a, n_splits="i32", scale="fp32", softcap="fp32")
    flags = dict(HAS_BIAS=True, HAS_TARGETS=True, SOFTCAP=True, ACC=tl.float32, PREC="tf32",
                 BM=64, BN=64, BK=32)
    for arch in (90, 80):
        compile(K.stats_jit, stats, dict(flags, HAS_SUM=True, HAS_ENTROPY=True), arch)
        for acc in (a, p):  # fp32 accumulation and in-place bf16 atomics
            grad = dict(ints, h_ptr=p, c_ptr=p, b_ptr=p, t_ptr="*i64", lse_ptr=a, g_ptr=a,
                        fa_ptr=a, dh_ptr=acc, dc_ptr=acc, db_ptr=a, v_lo="i32", v_hi="i32",
                        dc_row0="i32", stride_dhn="i32", stride_dcv="i32", scale="fp32",
                        softcap="fp32", fbc_ptr=a, filter_eps="fp32")
            compile(K.grad_jit, grad, dict(flags, BD=32, COMPUTE_DH=True, COMPUTE_DC=True,
                                           COMPUTE_DB=True), arch)
    print("compiled")
    """
)


def test_programs_compile_for_sm90_and_sm80():
    try:
        from triton.backends import backends
    except ImportError:
        pytest.skip("this triton has no backend registry")
    if "nvidia" not in backends:
        pytest.skip("this triton build has no NVIDIA backend")
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiled" in proc.stdout
