"""``cce-triton`` against a float64 reference written in plain torch.

On a machine without CUDA the suite's conftest sets TRITON_INTERPRET=1 before triton is imported,
so these run in the Triton interpreter (small odd shapes: it loops in Python). On a CUDA machine
(TRITON_INTERPRET=0) the same tests run natively and add bfloat16.

Tolerance rule (GUIDE section 2): the kernel's largest error against float64 must not exceed
PyTorch's own largest error in the same dtype (the naive formula evaluated in that dtype) plus a
small tolerance relative to the size of the reference.
"""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from lce_reference import make_case, reference_lce  # noqa: E402
from xent_cce.semantics import LinearCEOptions  # noqa: E402
from xent_cce.triton.kernel import CCETritonKernel  # noqa: E402
from xent_cce.triton.ops import Launch, LinearCrossEntropyFunction  # noqa: E402

import xent_core  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
ON_GPU = torch.cuda.is_available() and not INTERPRET
DEVICE = "cuda" if ON_GPU else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if ON_GPU else [])
#: the "small tolerance" of the rule, relative to the largest reference value
SLACK = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float64: 1e-10}

pytestmark = pytest.mark.skipif(
    not CCETritonKernel().available()[0], reason="cce-triton needs CUDA or TRITON_INTERPRET=1"
)


# --------------------------------------------------------------------------- reference


def naive(h, c, b, t, *, ignore_index=-100, reduction="mean", softcap=None, logit_scale=1.0,
          label_smoothing=0.0, z_loss=0.0):  # fmt: skip
    """Loss and per-token LSE from the full logits, in the dtype of the inputs."""
    y = h @ c.T
    if b is not None:
        y = y + b
    y = y * logit_scale
    if softcap:
        y = softcap * torch.tanh(y / softcap)
    v = y.shape[1]
    lse = torch.logsumexp(y, dim=-1)
    valid = t != ignore_index
    y_t = y.gather(1, torch.where(valid, t, 0)[:, None])[:, 0]
    per = lse - (1.0 - label_smoothing) * y_t
    if label_smoothing:
        per = per - (label_smoothing / v) * y.sum(dim=-1)
    if z_loss:
        per = per + z_loss * lse * lse
    per = torch.where(valid, per, torch.zeros_like(per))
    if reduction == "mean":
        return per.sum() / valid.sum().clamp(min=1), lse
    if reduction == "sum":
        return per.sum(), lse
    return per, lse


def make_inputs(n, v, d, dtype, *, bias=True, ignore_frac=0.0, peaked=False, seed=None):
    gen = torch.Generator().manual_seed(
        seed if seed is not None else int(torch.randint(0, 2**31, ()))
    )
    h = torch.randn(n, d, generator=gen)
    c = torch.randn(v, d, generator=gen) / math.sqrt(d) * 2.0
    if peaked:
        # part of the classifier copied from the hidden states: a few logits dominate each row
        c = c * 0.1
        c[:n] = h * 0.6
    b = torch.randn(v, generator=gen) * 0.5 if bias else None
    t = torch.randint(0, v, (n,), generator=gen)
    if ignore_frac:
        t[torch.rand(n, generator=gen) < ignore_frac] = -100
    to = dict(dtype=dtype, device=DEVICE)
    h, c = h.to(**to).requires_grad_(), c.to(**to).requires_grad_()
    b = b.to(**to).requires_grad_() if b is not None else None
    return h, c, b, t.to(DEVICE)


def leaves(h, c, b):
    return [x for x in (h, c, b) if x is not None]


def grads_of(loss, inputs, weight):
    return torch.autograd.grad((loss * weight).sum(), inputs)


def assert_rule(name, ours, ref, torch_same_dtype, dtype):
    """``max|ours - ref| <= max|torch_same_dtype - ref| + SLACK[dtype] * max|ref|``."""
    ref = ref.double()
    err = (ours.double() - ref).abs().max().item()
    base = (torch_same_dtype.double() - ref).abs().max().item()
    allowed = base + SLACK[dtype] * max(ref.abs().max().item(), 1e-30)
    assert math.isfinite(err), f"{name}: non-finite result"
    assert err <= allowed, (
        f"{name}: error {err:.3e} > torch's own {base:.3e} + slack ({allowed:.3e})"
    )


def check_against_reference(h, c, b, t, dtype, **opts):
    """Forward and gradients of the kernel vs float64, with torch's own error in ``dtype``."""
    kernel = CCETritonKernel()
    loss, lse = kernel.linear_cross_entropy(h, c, t, b, **opts)
    assert lse.dtype == torch.float32 and not lse.requires_grad and lse.shape == (h.shape[0],)
    weight = torch.randn(loss.shape, dtype=torch.float64, device=DEVICE) + 2.0
    ours = grads_of(loss, leaves(h, c, b), weight.to(loss.dtype))

    d = [x.detach().double().requires_grad_() for x in leaves(h, c, b)]
    h64, c64, b64 = d[0], d[1], (d[2] if b is not None else None)
    opts_ref = {k: v for k, v in opts.items() if k != "filter_eps"}
    ref_loss, ref_lse = naive(h64, c64, b64, t, **opts_ref)
    ref_grads = grads_of(ref_loss, d, weight)

    lo = [x.detach().clone().requires_grad_() for x in leaves(h, c, b)]
    lo_loss, lo_lse = naive(lo[0], lo[1], lo[2] if b is not None else None, t, **opts_ref)
    lo_grads = grads_of(lo_loss, lo, weight.to(lo_loss.dtype))

    assert_rule("loss", loss, ref_loss, lo_loss, dtype)
    assert_rule("lse", lse, ref_lse, lo_lse, dtype)
    for name, ours_g, ref_g, lo_g in zip(
        ("d_hidden", "d_classifier", "d_bias"), ours, ref_grads, lo_grads
    ):
        assert ours_g.dtype == dtype
        assert_rule(name, ours_g, ref_g, lo_g, dtype)
    return loss, ours


# --------------------------------------------------------------------------- forward + backward

CASES = {
    "plain": dict(shape=(37, 131, 33), bias=False, opts={}),
    "bias-ignored": dict(shape=(61, 257, 48), bias=True, ignore=0.3, opts={}),
    "softcap-scale": dict(shape=(37, 257, 33), bias=True, opts=dict(softcap=4.0, logit_scale=0.8)),
    "label-smoothing": dict(
        shape=(61, 131, 48), bias=False, ignore=0.2, opts=dict(label_smoothing=0.1)
    ),
    "z-loss": dict(shape=(37, 131, 48), bias=True, opts=dict(z_loss=0.05)),
    "everything": dict(
        shape=(61, 257, 33),
        bias=True,
        ignore=0.25,
        opts=dict(softcap=3.0, logit_scale=1.3, label_smoothing=0.15, z_loss=0.02),
    ),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matches_float64_reference(case, reduction, dtype):
    spec = CASES[case]
    n, v, d = spec["shape"]
    h, c, b, t = make_inputs(n, v, d, dtype, bias=spec["bias"], ignore_frac=spec.get("ignore", 0.0))
    loss, _ = check_against_reference(h, c, b, t, dtype, reduction=reduction, **spec["opts"])
    if reduction == "none":
        assert loss.shape == (n,)
        assert torch.all(loss[t == -100] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_tokens_ignored_gives_zero_loss_and_zero_grads(reduction):
    h, c, b, t = make_inputs(37, 131, 33, torch.float32, bias=True)
    t = torch.full_like(t, -100)
    loss, lse = CCETritonKernel().linear_cross_entropy(
        h, c, t, b, reduction=reduction, z_loss=0.1, label_smoothing=0.1
    )
    assert torch.all(loss == 0)
    assert torch.isfinite(lse).all()
    grads = grads_of(loss, [h, c, b], torch.ones_like(loss))
    for g in grads:
        assert torch.isfinite(g).all() and torch.all(g == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_no_tokens(dtype):
    h, c, b, t = make_inputs(0, 131, 33, dtype, bias=True)
    kernel = CCETritonKernel()
    loss, lse = kernel.linear_cross_entropy(h, c, t, b, label_smoothing=0.1)
    assert loss.item() == 0 and lse.shape == (0,)
    for g in torch.autograd.grad(loss, [h, c, b]):
        assert torch.all(g == 0)
    assert kernel.logsumexp(h, c, b).shape == (0,)
    assert kernel.token_entropy(h, c, b).shape == (0,)


def test_custom_ignore_index_that_is_a_class_id():
    h, c, b, t = make_inputs(37, 131, 33, torch.float32, bias=True)
    t[::3] = 0
    check_against_reference(h, c, b, t, torch.float32, ignore_index=0, label_smoothing=0.1)


def test_filtering_with_peaked_softmax_stays_within_tolerance():
    dtype = torch.bfloat16 if ON_GPU else torch.float16
    n, v, d = 61, 257, 48
    h, c, b, t = make_inputs(n, v, d, dtype, bias=False, peaked=True, seed=7)
    # most targets are the copied rows (the softmax peak); a few are elsewhere
    t[: n - 9] = torch.arange(n - 9, device=DEVICE)
    kernel = CCETritonKernel()
    filtered_loss, _ = kernel.linear_cross_entropy(h, c, t, b, filter_eps=2.0**-12)
    filtered = torch.autograd.grad(filtered_loss, [h, c])
    exact_loss, _ = kernel.linear_cross_entropy(h, c, t, b)
    exact = torch.autograd.grad(exact_loss, [h, c])
    assert filtered_loss.item() == exact_loss.item()  # the forward never filters

    d64 = [x.detach().double().requires_grad_() for x in (h, c)]
    ref = torch.autograd.grad(naive(*d64, None, t)[0], d64)
    lo = [x.detach().clone().requires_grad_() for x in (h, c)]
    lo_g = torch.autograd.grad(naive(*lo, None, t)[0], lo)
    for name, f, r, l in zip(("d_hidden", "d_classifier"), filtered, ref, lo_g):
        assert_rule(name, f, r, l, dtype)
    # filtering really skipped tiles: the results differ from the exact ones
    assert any(not torch.equal(f, e) for f, e in zip(filtered, exact))


def test_filter_above_every_entry_skips_every_tile():
    h, c, b, t = make_inputs(37, 131, 33, torch.float32, bias=True)
    loss, _ = CCETritonKernel().linear_cross_entropy(h, c, t, b, filter_eps=10.0)
    for g in torch.autograd.grad(loss, [h, c, b]):
        assert torch.all(g == 0)


def test_auto_filter_eps_is_dtype_eps_over_32():
    from xent_cce.triton.kernel import resolve_filter_eps

    assert resolve_filter_eps("auto", torch.bfloat16) == 2.0**-12
    assert resolve_filter_eps("auto", torch.float16) == 2.0**-15
    assert resolve_filter_eps(None, torch.float16) == 0.0
    assert resolve_filter_eps(1e-3, torch.float16) == 1e-3


def test_only_some_inputs_need_grad():
    h, c, b, t = make_inputs(37, 131, 33, torch.float32, bias=True)
    c.requires_grad_(False)
    loss, _ = CCETritonKernel().linear_cross_entropy(h, c, t, b, softcap=5.0)
    gh, gb = torch.autograd.grad(loss, [h, b])
    h64, c64, b64 = (x.detach().double().requires_grad_() for x in (h, c, b))
    ref, _ = naive(h64, c64, b64, t, softcap=5.0)
    rh, rb = torch.autograd.grad(ref, [h64, b64])
    torch.testing.assert_close(gh.double(), rh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gb.double(), rb, rtol=1e-4, atol=1e-6)


def test_non_contiguous_inputs():
    h, c, b, t = make_inputs(48, 131, 37, torch.float32, bias=True)
    hT = h.detach().T.contiguous().T.requires_grad_()  # column-major (N, D)
    assert hT.stride() != (37, 1)
    check_against_reference(hT, c, b, t, torch.float32, label_smoothing=0.05)


# --------------------------------------------------------------------------- internal paths


@pytest.mark.parametrize("splits", [1, 3, 9])
def test_vocabulary_splits_merge_exactly(splits):
    """Any number of forward splits (9 > vocabulary blocks leaves some empty) gives one answer."""
    h, c, b, t = make_inputs(37, 257, 33, torch.float32, bias=True)
    opts = LinearCEOptions(reduction="none", label_smoothing=0.1)
    loss, lse = LinearCrossEntropyFunction.apply(h, c, b, t, opts, Launch(n_splits=splits))
    ref, ref_lse = naive(
        *(x.detach().double() for x in (h, c, b)), t, reduction="none", label_smoothing=0.1
    )
    torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("accumulate", ["fp32", "input"])
def test_half_classifier_gradient_in_chunks_and_in_place(accumulate):
    """fp16 classifier gradient through small fp32 chunk buffers (40 rows, not a block multiple),
    and added straight into fp16 buffers."""
    dtype = torch.float16
    h, c, b, t = make_inputs(61, 257, 48, dtype, bias=True)
    opts = LinearCEOptions(reduction="sum", softcap=6.0)
    launch = Launch(accumulate=accumulate, chunk_rows=40)
    loss, _ = LinearCrossEntropyFunction.apply(h, c, b, t, opts, launch)
    gh, gc, gb = torch.autograd.grad(loss, [h, c, b])
    d = [x.detach().double().requires_grad_() for x in (h, c, b)]
    rh, rc, rb = torch.autograd.grad(naive(*d, t, reduction="sum", softcap=6.0)[0], d)
    lo = [x.detach().clone().requires_grad_() for x in (h, c, b)]
    lh, lc, lb = torch.autograd.grad(naive(*lo, t, reduction="sum", softcap=6.0)[0], lo)
    if accumulate == "fp32":
        for name, o, r, l in zip("hcb", (gh, gc, gb), (rh, rc, rb), (lh, lc, lb)):
            assert_rule(name, o, r, l, dtype)
    else:
        # one fp16 rounding per atomic addition: a few times torch's own error at most
        for o, r, l in zip((gh, gc, gb), (rh, rc, rb), (lh, lc, lb)):
            err = (o.double() - r).abs().max()
            assert err <= 4 * (l.double() - r).abs().max() + 1e-2 * r.abs().max()


# --------------------------------------------------------------------------- other primitives


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_logsumexp_forward_and_grads(dtype):
    h, c, b, _ = make_inputs(61, 131, 33, dtype, bias=True)
    kernel = CCETritonKernel()
    lse = kernel.logsumexp(h, c, b, softcap=3.0, logit_scale=0.9)
    assert lse.shape == (61,) and lse.dtype == torch.float32
    w = torch.randn(61, dtype=torch.float64, device=DEVICE)
    ours = torch.autograd.grad((lse * w).sum(), [h, c, b])

    def torch_lse(hh, cc, bb):
        y = 0.9 * (hh @ cc.T + bb)
        return torch.logsumexp(3.0 * torch.tanh(y / 3.0), dim=-1)

    d = [x.detach().double().requires_grad_() for x in (h, c, b)]
    ref = torch_lse(*d)
    ref_g = torch.autograd.grad((ref * w).sum(), d)
    lo = [x.detach().clone().requires_grad_() for x in (h, c, b)]
    lo_lse = torch_lse(*lo)
    lo_g = torch.autograd.grad((lo_lse * w.to(dtype)).sum(), lo)
    assert_rule("lse", lse, ref, lo_lse, dtype)
    for name, o, r, l in zip(("d_hidden", "d_classifier", "d_bias"), ours, ref_g, lo_g):
        assert_rule(name, o, r, l, dtype)


@pytest.mark.parametrize("softcap", [None, 2.0])
def test_token_entropy_matches_float64(softcap):
    h, c, b, _ = make_inputs(37, 257, 48, torch.float32, bias=True)
    ent = CCETritonKernel().token_entropy(h, c, b, softcap=softcap, logit_scale=1.5)
    y = 1.5 * (h.detach().double() @ c.detach().double().T + b.detach().double())
    if softcap:
        y = softcap * torch.tanh(y / softcap)
    logp = torch.log_softmax(y, dim=-1)
    ref = -(logp.exp() * logp).sum(dim=-1)
    assert ent.shape == (37,) and not ent.requires_grad
    torch.testing.assert_close(ent.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.all(ent >= 0) and torch.all(ent <= math.log(257) + 1e-5)


def test_gradcheck_float64():
    """The backward formula against finite differences of the forward (float64 accumulators)."""
    gen = torch.Generator().manual_seed(3)
    opts = dict(reduction="sum", softcap=2.0, logit_scale=0.7, label_smoothing=0.2, z_loss=0.1)
    h = torch.randn(4, 5, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    c = torch.randn(13, 5, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    b = torch.randn(13, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    t = torch.tensor([3, -100, 0, 12], device=DEVICE)
    kernel = CCETritonKernel()

    def f(hh, cc, bb):
        return kernel.linear_cross_entropy(hh, cc, t, bb, **opts)[0]

    assert torch.autograd.gradcheck(f, (h, c, b), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_autotuned_launch_starts_again_clean_after_tuning(monkeypatch):
    """On a GPU the autotuner runs every configuration on the real (atomically accumulated)
    buffers; the launcher must zero them and run again. Simulated here with a fake autotuner
    that runs three trials into the buffers on its first call."""
    from xent_cce.triton import programs as K

    class FakeAutotuner:
        def __init__(self, jit, config):
            self.jit, self.config, self.cache, self.calls = jit, config, {}, 0

        def __getitem__(self, grid):
            def run(*args, **kwargs):
                self.calls += 1
                for _ in range(1 if self.cache else 3):
                    self.jit[grid(self.config)](*args, **kwargs, **self.config)
                self.cache["key"] = self.config

            return run

    fakes = {
        "stats": FakeAutotuner(K.stats_jit, K.INTERPRET_STATS_CONFIG),
        "grad": FakeAutotuner(K.grad_jit, K.INTERPRET_GRAD_CONFIG),
    }
    monkeypatch.setattr(K, "pick", lambda kind, wide: (fakes[kind], None))
    dtype = torch.float16
    h, c, b, t = make_inputs(37, 131, 33, dtype, bias=True)
    opts = LinearCEOptions(reduction="sum")
    loss, _ = LinearCrossEntropyFunction.apply(h, c, b, t, opts, Launch(chunk_rows=70))
    ours = torch.autograd.grad(loss, [h, c, b])
    assert fakes["grad"].calls == 3  # two chunks, the first one launched twice
    d = [x.detach().double().requires_grad_() for x in (h, c, b)]
    ref = torch.autograd.grad(naive(*d, t, reduction="sum")[0], d)
    lo = [x.detach().clone().requires_grad_() for x in (h, c, b)]
    lo_g = torch.autograd.grad(naive(*lo, t, reduction="sum")[0], lo)
    for name, o, r, l in zip("hcb", ours, ref, lo_g):
        assert_rule(name, o, r, l, dtype)


# --------------------------------------------------------------------------- regressions


def test_triton_reads_a_strided_bias_correctly():
    kernel = xent_core.kernel("cce-triton")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(why)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    h, w, _, y = make_case(11, 16, 70, seed=4)
    params = torch.randn(70, 2)
    h, w, y, params = h.to(device), w.to(device), y.to(device), params.to(device)
    params.requires_grad_()
    bias = params[:, 1]  # a column of a larger parameter: stride 2
    assert not bias.is_contiguous()
    loss, lse = kernel.linear_cross_entropy(h, w, y, bias)
    loss.backward()
    p64 = params.detach().double().requires_grad_()
    ref = reference_lce(h.double(), w.double(), y, p64[:, 1])
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-5 * abs(ref.item())
    ref_lse = torch.logsumexp(h.double() @ w.double().T + p64[:, 1].detach(), dim=1)
    assert float((lse.double() - ref_lse).abs().max()) < 1e-5
    assert float((params.grad.double() - p64.grad).abs().max()) < 1e-6
    lse_only = kernel.logsumexp(h, w, bias)
    assert float((lse_only.detach().double() - ref_lse).abs().max()) < 1e-5


def test_triton_filtering_keeps_the_label_smoothing_gradient():
    # a peaked softmax: most tiles hold only p << filter_eps and the uniform -eps/V term; dropping
    # them lost about eps * mean_j(w_j) from every d_hidden row (cce-torch keeps it exactly)
    kernel = xent_core.kernel("cce-triton")
    ok, why = kernel.available()
    if not ok:
        pytest.skip(why)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(6)
    n, d, v = 16, 32, 2048
    h = torch.randn(n, d, generator=g)
    w = torch.randn(v, d, generator=g) * 0.05
    y = torch.randint(0, v, (n,), generator=g)
    w[y] = h * 0.5
    h64, w64 = h.double().requires_grad_(), w.double().requires_grad_()
    rh, rw = torch.autograd.grad(reference_lce(h64, w64, y, label_smoothing=0.1), [h64, w64])
    hh = h.to(device).requires_grad_()
    ww = w.to(device).requires_grad_()
    loss, _ = kernel.linear_cross_entropy(
        hh, ww, y.to(device), label_smoothing=0.1, filter_eps=1e-3
    )
    gh, gw = torch.autograd.grad(loss, [hh, ww])
    assert float((gh.cpu().double() - rh).abs().max()) <= 1e-4 * float(rh.abs().max())
    assert float((gw.cpu().double() - rw).abs().max()) <= 1e-4 * float(rw.abs().max())


def test_float64_label_smoothing_gradient_is_exact():
    """The smoothing constants reach the gradient program in float64 (not rounded to fp32)."""
    h, c, b, t = make_inputs(19, 67, 9, torch.float64, bias=True)
    loss, _ = CCETritonKernel().linear_cross_entropy(h, c, t, b, label_smoothing=0.1)
    got = torch.autograd.grad(loss, [h, c, b])
    d = [x.detach().clone().requires_grad_() for x in (h, c, b)]
    ref = torch.autograd.grad(naive(*d, t, label_smoothing=0.1)[0], d)
    for g, r in zip(got, ref):
        assert g.dtype == torch.float64
        assert float((g - r).abs().max()) < 1e-13 * max(1.0, float(r.abs().max()))


@pytest.mark.skipif(not INTERPRET, reason="the interpreter's bfloat16 limitation")
def test_bfloat16_is_refused_in_the_interpreter():
    from xent_core import NotAvailableError

    h, c, _, t = make_inputs(8, 17, 5, torch.float32)
    hb, cb = h.detach().bfloat16(), c.detach().bfloat16()
    kernel = CCETritonKernel()
    assert "no bfloat16" in kernel.available()[1]
    for call in (
        lambda: kernel.linear_cross_entropy(hb, cb, t),
        lambda: kernel.logsumexp(hb, cb),
        lambda: kernel.token_entropy(hb, cb),
    ):
        with pytest.raises(NotAvailableError, match="bfloat16"):
            call()
