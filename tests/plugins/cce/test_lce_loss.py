"""The ``linear-cross-entropy`` loss: options, shapes, shift, z-loss report, registry, stacks,
kernel selection and bad inputs."""

from __future__ import annotations

import pytest
import torch
from lce_reference import leaves, make_case, max_err, reference_lce
from xent_cce.loss import LinearCrossEntropy

import xent_core

IMPLS = ["auto", "cce-torch", "naive", "torch-native"]


def _batch(b=3, t=13, d=29, v=211, seed=0, bias=False):
    h, w, bb, y = make_case(b * t, d, v, bias=bias, ignore_every=9, seed=seed)
    return h.reshape(b, t, d), w, bb, y.reshape(b, t)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_batched_hidden_matches_flat_reference(impl, reduction):
    h0, w0, b0, y = _batch(bias=True)
    h, w, b = leaves(h0, w0, b0)
    loss_fn = xent_core.loss("linear-cross-entropy", reduction=reduction, impl=impl)
    out = loss_fn(h, w, y, bias=b)
    h64, w64, b64 = leaves(h0.double(), w0.double(), b0.double())
    ref = reference_lce(h64.reshape(-1, 29), w64, y.reshape(-1), b64, reduction=reduction)
    if reduction == "none":
        assert out.shape == (3, 13)
        ref = ref.reshape(3, 13)
    assert out.dtype == torch.float32
    assert max_err(out, ref) <= 1e-5 * float(ref.detach().abs().max())
    upstream = torch.randn_like(ref)
    (out * upstream.float()).sum().backward()
    (ref * upstream).sum().backward()
    for got, want in ((h.grad, h64.grad), (w.grad, w64.grad), (b.grad, b64.grad)):
        assert max_err(got, want) <= 1e-5 * float(want.abs().max()) + 1e-8


@pytest.mark.parametrize("impl", ["cce-torch", "naive"])
def test_shift_scores_next_token_without_copying_hidden(impl):
    h0, w0, _, y = _batch(seed=1)
    y = torch.randint(0, 211, y.shape)
    h = h0.detach().clone().requires_grad_()
    loss_fn = LinearCrossEntropy(shift=True, reduction="none", impl=impl)
    out = loss_fn(h, w0, y)
    # explicit shift: position t predicts y[t+1]; the last position is ignored
    ref_targets = torch.cat([y[:, 1:], torch.full((3, 1), -100)], dim=1)
    ref = reference_lce(
        h0.double().reshape(-1, 29), w0.double(), ref_targets.reshape(-1), reduction="none"
    ).reshape(3, 13)
    assert max_err(out, ref) < 1e-5
    assert float(out.detach()[:, -1].abs().max()) == 0.0
    mean = LinearCrossEntropy(shift=True, impl=impl)(h, w0, y).detach()
    assert abs(float(mean) - float(ref.sum() / (3 * 12))) < 1e-5
    # the next-token shift of a flat (N, D) sequence
    flat = LinearCrossEntropy(shift=True, impl=impl)(h0[0], w0, y[0])
    ref_flat = reference_lce(h0[0].double(), w0.double(), ref_targets[0])
    assert abs(float(flat.detach()) - float(ref_flat)) < 1e-5


def test_shift_does_not_copy_hidden(monkeypatch):
    """The flattened hidden handed to the kernel shares storage with the caller's tensor."""
    h, w, _, y = _batch(seed=2)
    seen = {}
    loss_fn = LinearCrossEntropy(shift=True, impl="cce-torch")
    _, kernel = loss_fn.kernel_for(h.device)
    real = kernel.linear_cross_entropy

    def spy(hidden, *args, **kwargs):
        seen["ptr"] = hidden.data_ptr()
        return real(hidden, *args, **kwargs)

    monkeypatch.setattr(kernel, "linear_cross_entropy", spy)
    loss_fn(h, w, y)
    assert seen["ptr"] == h.data_ptr()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_z_loss_is_included_and_reported_apart(reduction):
    h, w, _, y = _batch(seed=3)
    lam = 0.02
    with_z = LinearCrossEntropy(z_loss=lam, reduction=reduction)
    without = LinearCrossEntropy(reduction=reduction)
    total = with_z(h, w, y)
    base = without(h, w, y)
    assert torch.allclose(total - base, with_z.last_z_loss, rtol=1e-4, atol=1e-6)
    lse = torch.logsumexp(h.reshape(-1, 29).double() @ w.double().T, -1)
    valid = y.reshape(-1) != -100
    per = torch.where(valid, lam * lse**2, torch.zeros_like(lse))
    want = {"mean": per.sum() / valid.sum(), "sum": per.sum(), "none": per}[reduction]
    assert max_err(with_z.last_z_loss.reshape(-1), want.reshape(-1)) < 1e-5
    assert float(without.last_z_loss.abs().max()) == 0.0


def test_return_lse_shape_and_values():
    h, w, b, y = _batch(seed=4, bias=True)
    loss, lse = LinearCrossEntropy(return_lse=True, softcap=5.0)(h, w, y, bias=b)
    assert loss.dim() == 0 and lse.shape == (3, 13) and not lse.requires_grad
    z = 5.0 * torch.tanh((h.double() @ w.double().T + b.double()) / 5.0)
    want = torch.where(y != -100, torch.logsumexp(z, -1), torch.zeros(()))
    assert max_err(lse, want) < 1e-5


def test_all_ignored_batch_loss_and_grads_zero():
    h0, w0, b0, y = _batch(bias=True)
    for reduction in ("mean", "sum", "none"):
        h, w, b = leaves(h0, w0, b0)
        out = LinearCrossEntropy(reduction=reduction, z_loss=1e-3)(
            h, w, torch.full_like(y, -100), b
        )
        out.sum().backward()
        assert float(out.detach().abs().sum()) == 0.0
        for t in (h, w, b):
            assert torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_low_precision_inputs_accumulate_in_fp32(dtype):
    h0, w0, _, y = _batch(seed=5)
    h, w = leaves(h0.to(dtype), w0.to(dtype))
    out = LinearCrossEntropy()(h, w, y)
    out.backward()
    assert out.dtype == torch.float32 and h.grad.dtype == dtype and w.grad.dtype == dtype
    ref = reference_lce(h.detach().double().reshape(-1, 29), w.detach().double(), y.reshape(-1))
    assert abs(float(out.detach()) - float(ref)) < 1e-5 * float(ref)


def test_options_reach_the_kernel():
    h, w, b, y = _batch(seed=6, bias=True)
    opts = {"softcap": 2.0, "logit_scale": 0.5, "label_smoothing": 0.1, "z_loss": 1e-3}
    got = LinearCrossEntropy(**opts, filter_eps=None)(h, w, y, b)
    ref = reference_lce(h.double().reshape(-1, 29), w.double(), y.reshape(-1), b.double(), **opts)
    assert abs(float(got.detach()) - float(ref)) < 1e-5


def test_registry_metadata_and_factory():
    spec = xent_core.info("linear-cross-entropy")
    assert spec.kind == "loss" and spec.plugin == "cce"
    assert spec.inputs == ("hidden", "classifier", "targets")
    assert spec.optional_inputs == ("bias", "num_items")
    assert {"softcap", "shift", "filter_eps", "impl", "z_loss"} <= set(spec.param_names)
    assert any("2411.09009" in c.arxiv for c in spec.citations)
    kernels = {s.name for s in xent_core.list_components("kernel", plugin="cce")}
    assert {"cce-torch", "cce-triton", "naive", "torch-native"} <= kernels
    with pytest.raises(xent_core.BadParameterError, match="valid parameters"):
        xent_core.loss("linear-cross-entropy", temperature=2.0)


def test_in_a_stack_routes_inputs_by_name():
    h0, w0, _, y = _batch(seed=7)
    stack = xent_core.stack("linear-cross-entropy + 0.5*linear-cross-entropy(label_smoothing=0.1)")
    h = h0.detach().clone().requires_grad_()
    total = stack(hidden=h, classifier=w0, targets=y)
    total.backward()
    a = reference_lce(h0.double().reshape(-1, 29), w0.double(), y.reshape(-1))
    b = reference_lce(h0.double().reshape(-1, 29), w0.double(), y.reshape(-1), label_smoothing=0.1)
    assert abs(float(total.detach()) - float(a + 0.5 * b)) < 1e-5
    assert h.grad is not None and torch.isfinite(h.grad).all()
    # return_lse: a stack term may return (loss, extra)
    stack2 = LinearCrossEntropy(return_lse=True) + 0.0 * LinearCrossEntropy()
    assert stack2(hidden=h0, classifier=w0, targets=y).dim() == 0


def test_auto_selection_and_explicit_impls():
    h, w, _, y = _batch(seed=8)
    loss_fn = LinearCrossEntropy()
    loss_fn(h, w, y)
    assert loss_fn.last_impl == "cce-torch"  # CPU tensors
    for impl in ("naive", "cce-torch(chunk_elements=512)", "torch-native(chunked=True)"):
        out = LinearCrossEntropy(impl=impl)(h, w, y)
        assert abs(float(out.detach()) - float(loss_fn(h, w, y).detach())) < 1e-5
    with pytest.raises(xent_core.UnknownComponentError, match="did you mean"):
        LinearCrossEntropy(impl="cce-torh")
    with pytest.raises(xent_core.BadParameterError):
        LinearCrossEntropy(impl="cce-torch(chunk_elements=")
    with pytest.raises(xent_core.BadParameterError, match="does not support softcap"):
        LinearCrossEntropy(impl="torch-native", softcap=3.0)(h, w, y)
    if not xent_core.kernel("cce-triton").available()[0]:
        with pytest.raises(xent_core.NotAvailableError, match="not available"):
            LinearCrossEntropy(impl="cce-triton")(h, w, y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"reduction": "avg"}, "reduction"),
        ({"softcap": -1.0}, "softcap"),
        ({"logit_scale": 0.0}, "logit_scale"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"z_loss": -0.1}, "z_loss"),
        ({"filter_eps": "high"}, "filter_eps"),
        ({"filter_eps": -1.0}, "filter_eps"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(xent_core.BadParameterError, match=match):
        xent_core.loss("linear-cross-entropy", **params)


def _bad_inputs():
    h, w, b, y = make_case(11, 7, 19, bias=True)
    nan_h = h.clone()
    nan_h[3, 2] = float("nan")
    return {
        "hidden-1d": ((h[0], w, y[:1]), "hidden must be"),
        "width-mismatch": ((h, w[:, :5], y), r"classifier is \(19, 5\)"),
        "classifier-3d": ((h, w[None], y), "classifier must be"),
        "targets-shape": ((h, w, y[:5]), "targets shape"),
        "target-too-big": ((h, w, torch.where(y == y[0], 19, y)), "target 19 is out of range"),
        "target-negative": ((h, w, torch.where(y == y[0], -3, y)), "out of range"),
        "float-targets": ((h, w, y.float()), "integer class ids"),
        "bool-targets": ((h, w, y > 3), "integer class ids"),
        "int-hidden": ((h.long(), w.long(), y), "floating point"),
        "dtype-mismatch": ((h, w.double(), y), "differs from hidden dtype"),
        "bias-shape": ((h, w, y, b[:4]), "bias must have shape"),
        "bias-dtype": ((h, w, y, b.double()), "bias dtype"),
        "not-a-tensor": ((h.tolist(), w, y), "must be a torch.Tensor"),
        "non-finite": ((nan_h, w, y), "NaN or infinite"),
    }


@pytest.mark.parametrize("case", sorted(_bad_inputs()))
def test_bad_inputs_raise_clear_errors(case):
    args, match = _bad_inputs()[case]
    with pytest.raises(xent_core.BadInputError, match=match):
        LinearCrossEntropy()(*args)


def test_device_mismatch_is_reported():
    if torch.cuda.is_available():
        other = "cuda"
    else:
        other = "meta"
    h, w, _, y = make_case(5, 3, 7)
    with pytest.raises(xent_core.BadInputError, match="different devices"):
        LinearCrossEntropy()(h, w.to(other), y)


def test_ignore_index_custom_value_is_not_out_of_range():
    h, w, _, y = make_case(9, 4, 13)
    y[2] = 999
    out = LinearCrossEntropy(ignore_index=999, reduction="none")(h, w, y)
    assert float(out[2]) == 0.0
    ref = reference_lce(h.double(), w.double(), y, ignore_index=999, reduction="none")
    assert max_err(out, ref) < 1e-5


def test_num_items_makes_micro_batches_add_up_to_the_full_batch():
    g = torch.Generator().manual_seed(11)
    h = torch.randn(41, 19, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(67, 19, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 67, (41,), generator=g)
    y[[3, 30]] = -100
    loss = xent_core.loss("linear-cross-entropy", label_smoothing=0.1, z_loss=1e-3, filter_eps=None)
    full = loss(hidden=h, classifier=w, targets=y)
    g_full = torch.autograd.grad(full, (h, w))
    n = int((y != -100).sum())
    acc = loss(hidden=h[:17], classifier=w, targets=y[:17], num_items=n) + loss(
        hidden=h[17:], classifier=w, targets=y[17:], num_items=n
    )
    g_acc = torch.autograd.grad(acc, (h, w))
    torch.testing.assert_close(acc, full)
    for a, b in zip(g_acc, g_full):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- bad input (issue 15)


@pytest.mark.parametrize("name", ["classifier", "bias"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_classifier_or_bias_is_refused(name, value):
    h, w, b, y = make_case(9, 5, 13, bias=True)
    bad = {"classifier": w.clone(), "bias": b.clone()}[name]
    bad.view(-1)[3] = value
    args = (h, bad, y, b) if name == "classifier" else (h, w, y, bad)
    with pytest.raises(xent_core.BadInputError, match=f"{name} contains NaN or infinite"):
        LinearCrossEntropy()(*args)
    # and through the num_items (data-parallel) path too
    with pytest.raises(xent_core.BadInputError, match=f"{name} contains NaN or infinite"):
        LinearCrossEntropy()(*args, num_items=4)


@pytest.mark.parametrize("impl", ["cce-torch", "naive"])
def test_finite_inputs_whose_logits_overflow_are_refused(impl):
    h, w, _, y = make_case(6, 4, 11)
    h = h * 1e20  # finite fp32, but h @ w.T reaches ~1e20 * 1e20 = inf
    w = w * 1e20
    assert bool(torch.isfinite(h).all()) and bool(torch.isfinite(w).all())
    with pytest.raises(xent_core.BadInputError, match="logits overflow"):
        LinearCrossEntropy(impl=impl)(h, w, y)
    with pytest.raises(xent_core.BadInputError, match="logits overflow"):
        LinearCrossEntropy(impl=impl, reduction="none")(h, w, y, num_items=None)
    # the switch turns the check (and its device synchronisation) off
    assert not bool(torch.isfinite(LinearCrossEntropy(impl=impl, check_inputs=False)(h, w, y)))


def test_zero_width_hidden_is_refused():
    h = torch.zeros(4, 0)
    w = torch.zeros(7, 0)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(xent_core.BadInputError, match="D=0"):
        LinearCrossEntropy()(h, w, y)


@pytest.mark.parametrize(
    "params",
    [
        {"ignore_index": None},
        {"ignore_index": 1.5},
        {"logit_scale": None},
        {"softcap": "3"},
        {"shift": "no"},
        {"return_lse": 1},
        {"check_inputs": "false"},
        {"z_loss": "0.1"},
        {"vocab_start": -2},
    ],
    ids=lambda p: "-".join(f"{k}={v!r}" for k, v in p.items()),
)
def test_wrongly_typed_parameters_are_bad_parameter_errors(params):
    (name,) = params
    with pytest.raises(xent_core.BadParameterError, match=name):
        xent_core.loss("linear-cross-entropy", **params)


def test_kernels_check_the_same_options_record():
    h, w, _, y = make_case(5, 3, 7)
    for spec in ("cce-torch", "naive", "torch-native"):
        kernel = xent_core.kernel(spec)
        with pytest.raises(xent_core.BadParameterError, match="ignore_index"):
            kernel.linear_cross_entropy(h, w, y, ignore_index=1.5)
        with pytest.raises(xent_core.BadParameterError, match="logit_scale"):
            kernel.linear_cross_entropy(h, w, y, logit_scale=0)
