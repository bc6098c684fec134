"""Every CPU linear cross-entropy kernel against a float64 reference (values and gradients).

Tolerance rule (GUIDE section 2): a kernel's largest error against float64 (computed from the
same rounded inputs) must not exceed PyTorch's own largest error in the same dtype (the reference
formula evaluated in that dtype) plus a small slack relative to the reference's magnitude.
"""

from __future__ import annotations

import pytest
import torch
from lce_reference import (
    SLACK,
    assert_rule,
    leaves,
    logits,
    make_case,
    max_err,
    reference_lce,
)
from xent_cce.torch.chunked import LogitMap, softmax_stats
from xent_cce.torch.grads import kept_ranges, softmax_grad

import xent_core

# kernel spec -> options it does not support (expect BadParameterError)
KERNELS = {
    "cce-torch": set(),
    "cce-torch(chunk_elements=1600)": set(),  # 16 rows x 100 vocabulary columns: two-pass path
    "naive": set(),
    "torch-native": {"softcap", "z_loss"},
    "torch-native(chunked=True)": {"softcap", "z_loss", "label_smoothing"},
}

CASES = {
    # name: (n, d, v, bias, ignore_every, options)
    "plain-mean": (37, 31, 257, False, 0, {}),
    "bias-sum": (53, 40, 301, True, 7, {"reduction": "sum"}),
    "none-ignore": (61, 33, 263, True, 3, {"reduction": "none"}),
    "softcap": (41, 35, 311, False, 5, {"softcap": 2.5}),
    "label-smoothing": (43, 37, 269, True, 4, {"label_smoothing": 0.1}),
    "z-loss": (47, 39, 283, False, 6, {"z_loss": 1e-2}),
    "logit-scale": (59, 45, 293, True, 0, {"logit_scale": 0.7}),
    "everything": (123, 67, 507, True, 5, {
        "reduction": "none", "softcap": 3.0, "label_smoothing": 0.2, "z_loss": 0.05,
        "logit_scale": 1.3,
    }),
}  # fmt: skip


def _create(spec):
    from xent_cce.selection import create_kernel

    return create_kernel(spec)


def _unsupported(spec, options, bias):
    used = {k for k, v in options.items() if v and k in ("softcap", "z_loss", "label_smoothing")}
    return used & KERNELS[spec]


def _run(kernel, h, w, y, b, options, upstream):
    loss, _ = kernel.linear_cross_entropy(h, w, y, b, **options)
    params = [t for t in (h, w, b) if t is not None]
    grads = torch.autograd.grad((loss * upstream).sum(), params)
    return loss, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("spec", sorted(KERNELS))
def test_kernel_matches_float64(spec, case, dtype):
    n, d, v, bias, ignore_every, options = CASES[case]
    h0, w0, b0, y = make_case(n, d, v, dtype, bias=bias, ignore_every=ignore_every, seed=len(case))
    kernel = _create(spec)
    if _unsupported(spec, options, bias):
        with pytest.raises(xent_core.BadParameterError):
            kernel.linear_cross_entropy(h0, w0, y, b0, **options)
        return
    red = options.get("reduction", "mean")
    upstream = torch.randn(n) if red == "none" else torch.tensor(1.0)
    h, w, b = leaves(h0, w0, b0)
    loss, grads = _run(kernel, h, w, y, b, options, upstream)
    # float64 reference from the same (rounded) inputs
    h64, w64, b64 = leaves(*(None if t is None else t.double() for t in (h0, w0, b0)))
    ref_opts = {k: val for k, val in options.items()}
    ref = reference_lce(h64, w64, y, b64, **ref_opts)
    ref_grads = torch.autograd.grad(
        (ref * upstream.double()).sum(), [t for t in (h64, w64, b64) if t is not None]
    )
    # PyTorch's own error: the same formula in the input dtype
    hd, wd, bd = leaves(h0, w0, b0)
    own = reference_lce(hd, wd, y, bd, **ref_opts)
    own_grads = torch.autograd.grad(
        (own * upstream.to(own.dtype)).sum(), [t for t in (hd, wd, bd) if t is not None]
    )
    assert loss.shape == ref.shape
    assert_rule(f"{spec}/{case} loss", loss, ref, own, dtype)
    for name, g, r, o in zip(("d_hidden", "d_classifier", "d_bias"), grads, ref_grads, own_grads):
        assert g.dtype == dtype, f"{name} dtype {g.dtype}"
        assert_rule(f"{spec}/{case} {name}", g, r, o, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("spec", sorted(KERNELS))
def test_all_tokens_ignored_gives_zero(spec, reduction):
    h0, w0, b0, y = make_case(29, 17, 131, bias=True)
    y = torch.full_like(y, -100)
    h, w, b = leaves(h0, w0, b0)
    loss, _ = _create(spec).linear_cross_entropy(h, w, y, b, reduction=reduction)
    assert torch.isfinite(loss).all()
    assert float(loss.detach().abs().sum()) == 0.0
    loss.sum().backward()
    for t in (h, w, b):
        assert t.grad is None or (torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) == 0.0)


@pytest.mark.parametrize("chunk_elements", [4194304, 160])
@pytest.mark.parametrize(
    "options",
    [
        {"reduction": "mean"},
        {"reduction": "none", "softcap": 2.0, "label_smoothing": 0.1, "z_loss": 0.1},
        {"reduction": "sum", "logit_scale": 0.8, "label_smoothing": 0.3},
    ],
    ids=["mean", "none-all-options", "sum-scale-smoothing"],
)
def test_cce_torch_gradcheck_float64(options, chunk_elements):
    from xent_cce.torch.kernel import CCETorchKernel

    kernel = CCETorchKernel(chunk_elements=chunk_elements)
    h, w, b, y = make_case(7, 5, 23, torch.float64, bias=True, ignore_every=3, seed=3)
    h, w, b = leaves(h, w, b)

    def fn(h, w, b):
        return kernel.linear_cross_entropy(h, w, y, b, **options)[0]

    # forward-time gradients vs recomputed ones differ in the last bits: a tiny nondet_tol
    assert torch.autograd.gradcheck(fn, (h, w, b), nondet_tol=1e-12, fast_mode=True)


def test_lse_is_returned_per_token():
    h, w, b, y = make_case(37, 19, 211, bias=True, ignore_every=4)
    want = torch.logsumexp(logits(h.double(), w.double(), b.double(), softcap=3.0), -1)
    valid = y != -100
    for spec in ("cce-torch", "cce-torch(chunk_elements=200)", "naive"):
        _, lse = _create(spec).linear_cross_entropy(h, w, y, b, softcap=3.0)
        assert lse.shape == (37,) and not lse.requires_grad
        assert max_err(lse[valid], want[valid]) < 1e-5


def test_peaked_softmax_filtering_stays_within_tolerance():
    """Copy classifier rows into hidden so each softmax is peaked and whole blocks get skipped."""
    from xent_cce.torch import grads as chunked

    n, d, v = 96, 48, 4099
    h0, w0, _, y = make_case(n, d, v, seed=11)
    h0[: n // 2] = 6.0 * w0[y[: n // 2]] * d**0.5  # half the tokens: target logit >> others
    h0[n // 2 :] *= 4.0
    skipped: list[float] = []  # fraction of vocabulary columns left out, per chunk
    real = chunked.kept_ranges

    def spy(probs, eps, block=chunked.DEFAULT_FILTER_BLOCK, force=None):
        out = real(probs, eps, block, force)
        skipped.append(1.0 - sum(hi - lo for lo, hi in out) / probs.shape[1])
        return out

    kernel = _create("cce-torch(filter_block=128, chunk_elements=196752)")
    results = {}
    for eps in (None, "auto", 1e-5):
        skipped.clear()
        chunked.kept_ranges = spy
        try:
            h, w = leaves(h0, w0)
            loss, _ = kernel.linear_cross_entropy(h, w, y, filter_eps=eps)
            loss.backward()
        finally:
            chunked.kept_ranges = real
        results[eps] = (loss.detach(), h.grad, w.grad, max(skipped))
    h64, w64 = leaves(h0.double(), w0.double())
    ref = reference_lce(h64, w64, y)
    ref.backward()
    hf, wf = leaves(h0, w0)
    own = reference_lce(hf, wf, y)
    own.backward()
    assert results[None][3] == 0.0, "exact mode must not skip blocks"
    # the chunk of peaked tokens keeps only the blocks holding its targets
    assert results["auto"][3] > 0.2 and results[1e-5][3] >= results["auto"][3]
    for eps, (loss, gh, gw, _) in results.items():
        assert_rule(f"filter {eps} loss", loss, ref, own, torch.float32)
        assert_rule(f"filter {eps} d_hidden", gh, h64.grad, hf.grad, torch.float32)
        assert_rule(f"filter {eps} d_classifier", gw, w64.grad, wf.grad, torch.float32)


def test_confident_wrong_prediction_underflow_is_exact():
    """p_y underflows to 0 in fp32: the kernel recomputes that row's log-sum-exp."""
    h0, w0, _, y = make_case(17, 24, 97, seed=5)
    other = (y + 1) % 97
    h0[:5] = 40.0 * w0[other[:5]] * 24**0.5
    h, w = leaves(h0, w0)
    loss, _ = _create("cce-torch").linear_cross_entropy(h, w, y, reduction="none")
    ref = reference_lce(h0.double(), w0.double(), y, reduction="none")
    assert torch.isfinite(loss).all()
    assert float(((loss.detach().double() - ref).abs() / ref.abs().clamp_min(1)).max()) < 1e-5
    loss.sum().backward()
    assert torch.isfinite(h.grad).all() and torch.isfinite(w.grad).all()


def test_retain_graph_second_backward_recomputes():
    h, w, b, y = make_case(31, 16, 101, bias=True, ignore_every=5)
    h, w, b = leaves(h, w, b)
    loss, _ = _create("cce-torch").linear_cross_entropy(h, w, y, b, z_loss=0.01)
    loss.backward(retain_graph=True)
    first = [t.grad.clone() for t in (h, w, b)]
    loss.backward()
    for t, g in zip((h, w, b), first):
        assert torch.allclose(t.grad, 2 * g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "spec", ["cce-torch", "cce-torch(chunk_elements=160)", "naive", "torch-native"]
)
def test_logsumexp_and_entropy_primitives(spec):
    h0, w0, b0, _ = make_case(33, 21, 229, bias=True, seed=2)
    kernel = _create(spec)
    h, w, b = leaves(h0, w0, b0)
    lse = kernel.logsumexp(h, w, b, softcap=4.0, logit_scale=0.9)
    h64, w64, b64 = leaves(h0.double(), w0.double(), b0.double())
    z64 = logits(h64, w64, b64, softcap=4.0, logit_scale=0.9)
    ref = torch.logsumexp(z64, -1)
    upstream = torch.randn(33)
    (lse * upstream).sum().backward()
    (ref * upstream.double()).sum().backward()
    assert lse.shape == (33,)
    assert max_err(lse, ref) < 1e-5
    for got, want in ((h.grad, h64.grad), (w.grad, w64.grad), (b.grad, b64.grad)):
        assert max_err(got, want) <= SLACK[torch.float32] * float(want.abs().max()) + 1e-6
    ent = kernel.token_entropy(h0, w0, b0, softcap=4.0, logit_scale=0.9)
    p = torch.softmax(z64.detach(), -1)
    want_ent = -(p * torch.log(p)).sum(-1)
    assert max_err(ent, want_ent) < 1e-5


def test_softmax_grad_primitive_general_weights():
    """The building block for other plugins: arbitrary a, b, c including a = 0 with b != 0."""
    h0, w0, b0, y = make_case(40, 12, 150, torch.float64, bias=True, seed=9)
    y[3] = -1  # outside this "shard": contributes nothing
    a = torch.randn(40, dtype=torch.float64)
    a[:6] = 0.0
    bw = torch.randn(40, dtype=torch.float64)
    c = torch.randn(40, dtype=torch.float64)
    lmap = LogitMap(logit_scale=1.1, softcap=None)
    for lm in (lmap, LogitMap(logit_scale=1.1, softcap=2.0)):
        h, w, b = leaves(h0, w0, b0)
        z = logits(h, w, b, softcap=lm.softcap, logit_scale=lm.logit_scale)
        inside = (y >= 0) & (y < 150)
        zy = z.gather(1, torch.where(inside, y, 0)[:, None]).squeeze(1) * inside
        obj = (a * torch.logsumexp(z, -1) - bw * zy - c * z.sum(-1)).sum()
        obj.backward()
        stats = softmax_stats(h0, w0, b0, lmap=lm, targets=y, logit_sum=True, chunk_elements=300)
        assert max_err(stats.lse, torch.logsumexp(z, -1)) < 1e-12
        assert max_err(stats.target_logit, zy) < 1e-12
        assert max_err(stats.logit_sum, z.sum(-1)) < 1e-10
        for chunk in (300, 1 << 20):
            got = softmax_grad(h0, w0, b0, stats.lse, softmax_weight=a, targets=y,
                               target_weight=bw, uniform_weight=c, lmap=lm,
                               chunk_elements=chunk)  # fmt: skip
            assert max_err(got.hidden, h.grad) < 1e-10
            assert max_err(got.classifier, w.grad) < 1e-10
            assert max_err(got.bias, b.grad) < 1e-10


def test_kept_ranges_drops_small_blocks_keeps_targets_and_merges():
    probs = torch.full((3, 10), 1e-9)
    probs[0, 1] = 0.5  # block 0 (cols 0-3) kept by value
    probs[2, 5] = 0.3  # block 1 (cols 4-7) kept by value
    assert kept_ranges(probs, 1e-6, block=4) == [(0, 8)]
    assert kept_ranges(probs, 1e-6, block=4, force=torch.tensor([9])) == [(0, 10)]
    probs[2, 5] = 1e-9
    assert kept_ranges(probs, 1e-6, block=4) == [(0, 4)]
    assert kept_ranges(probs, None, block=4) == [(0, 10)]


def test_token_entropy_keeps_precision_on_peaked_rows_with_large_logits():
    """Entropy is summed as -p log p terms, not lse - E[z]: large peaked logits do not cancel."""
    g = torch.Generator().manual_seed(5)
    h = torch.randn(29, 16, generator=g)
    w = torch.randn(301, 16, generator=g)
    w[:29] = 40 * h  # each token's own row dominates: entropy ~ 1e-30..1e-3, logits ~ 1e3
    bias = torch.full((301,), 500.0)  # a large common offset cancels in the softmax
    kernel = xent_core.kernel("cce-torch", chunk_elements=64 * 16)  # several vocab blocks per row
    got = kernel.token_entropy(h, w, bias)
    z = h.double() @ w.double().T + 500.0
    logp = torch.log_softmax(z, -1)
    want = -(logp.exp() * logp).sum(-1)
    assert torch.isfinite(got).all()
    # absolute error at the level of fp32 rounding of the entropies themselves, not of |z| ~ 1e3
    assert (got.double() - want).abs().max() < 1e-6 + 1e-5 * want.abs().max()
    loose = torch.randn(7, 16, generator=g)
    torch.testing.assert_close(
        kernel.token_entropy(loose, w).double(),
        -(
            torch.softmax(loose.double() @ w.double().T, -1)
            * torch.log_softmax(loose.double() @ w.double().T, -1)
        ).sum(-1),
        rtol=1e-5,
        atol=1e-5,
    )


# --------------------------------------------------------------------------- regressions


def _record_need(monkeypatch):
    import xent_cce.torch.kernel as tk

    seen = []
    original = tk.fused_loss_and_grad

    def spy(*args, **kwargs):
        seen.append(kwargs["need"])
        return original(*args, **kwargs)

    monkeypatch.setattr(tk, "fused_loss_and_grad", spy)
    return seen


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_cce_torch_skips_gradient_work_without_grad_mode(monkeypatch, mode):
    seen = _record_need(monkeypatch)
    h, w, b, y = make_case(29, 13, 101, bias=True, ignore_every=4, seed=3)
    h.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    loss_fn = xent_core.loss("linear-cross-entropy", impl="cce-torch", filter_eps=None)
    ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with ctx:
        got = loss_fn(h, w, y, b)
    assert seen == [(False, False, False)]
    assert not got.requires_grad
    ref = reference_lce(h.detach().double(), w.detach().double(), y, b.detach().double())
    assert abs(float(got) - float(ref)) <= 1e-5 * abs(float(ref))
    # with grad mode on, the same call still forms the gradients in forward (fused path)
    loss_fn(h, w, y, b).backward()
    assert seen[-1] == (True, True, True)
    assert h.grad is not None and w.grad is not None and b.grad is not None
