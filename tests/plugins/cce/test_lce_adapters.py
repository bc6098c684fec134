"""Peer adapters: conditional registration, availability reasons, unsupported options."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import xent_cce
from lce_reference import leaves, make_case, max_err, reference_lce

import xent_core


def _registered(monkeypatch, missing: set[str]) -> set[str]:
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name in missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    names: set[str] = set()
    xent_cce.register_kernels(lambda target, name=None, **meta: names.add(name))
    return names


def test_peers_registered_only_when_importable(monkeypatch):
    without = _registered(monkeypatch, {"cut_cross_entropy", "liger_kernel"})
    assert without == {"cce-torch", "cce-triton", "logprob-moments", "naive", "torch-native"}
    monkeypatch.undo()
    with_all = _registered(monkeypatch, set())
    for module, name in (("cut_cross_entropy", "apple-cce"), ("liger_kernel", "liger")):
        assert (name in with_all) == (importlib.util.find_spec(module) is not None)


def test_adapter_availability_reasons(monkeypatch):
    from xent_cce.adapters.peers import AppleCCEKernel, LigerKernel

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    ok, reason = AppleCCEKernel().available()
    assert not ok and "pip install cut-cross-entropy" in reason
    ok, reason = LigerKernel().available()
    assert not ok and "pip install liger-kernel" in reason
    monkeypatch.undo()
    if not torch.cuda.is_available():
        ok, reason = AppleCCEKernel(impl="cce").available()
        assert not ok and "CUDA" in reason
        if importlib.util.find_spec("liger_kernel") is not None:
            ok, reason = LigerKernel().available()
            assert not ok and "CUDA" in reason
    with pytest.raises(xent_core.BadParameterError, match="impl"):
        AppleCCEKernel(impl="fast")


@pytest.mark.parametrize(
    ("options", "what"),
    [
        ({"label_smoothing": 0.1}, "label_smoothing"),
        ({"z_loss": 1e-4}, "z_loss"),
        ({"bias": True}, "bias"),
    ],
)
def test_apple_cce_rejects_options_it_lacks(options, what):
    from xent_cce.adapters.peers import AppleCCEKernel

    h, w, b, y = make_case(9, 4, 11, bias=True)
    kwargs = dict(options)
    bias = b if kwargs.pop("bias", False) else None
    with pytest.raises(xent_core.BadParameterError, match=f"does not support {what}"):
        AppleCCEKernel().linear_cross_entropy(h, w, y, bias, **kwargs)


def test_torch_native_rejects_what_pytorch_lacks():
    from xent_cce.adapters.native import TorchNativeKernel

    h, w, _, y = make_case(9, 4, 11)
    with pytest.raises(xent_core.BadParameterError, match="softcap"):
        TorchNativeKernel().linear_cross_entropy(h, w, y, softcap=3.0)
    with pytest.raises(xent_core.BadParameterError, match="label_smoothing"):
        TorchNativeKernel(chunked=True).linear_cross_entropy(h, w, y, label_smoothing=0.1)
    with pytest.raises(xent_core.BadParameterError, match="batch_chunk_size"):
        TorchNativeKernel(batch_chunk_size=0)
    assert TorchNativeKernel().available()[0] == hasattr(
        torch.nn.functional, "linear_cross_entropy"
    )


@pytest.mark.opt_in  # its torch.compile takes about a minute on a 2-core CPU (the CPU benchmark
# also checks it against naive): run with python -m pytest -m opt_in
@pytest.mark.skipif(
    importlib.util.find_spec("cut_cross_entropy") is None,
    reason="needs cut-cross-entropy (the dev extra installs it)",
)
def test_apple_cce_matches_float64():
    h0, w0, _, y = make_case(37, 31, 257, ignore_every=5)
    h, w = leaves(h0, w0)
    loss, _ = xent_core.kernel("apple-cce").linear_cross_entropy(h, w, y, softcap=3.0)
    loss.backward()
    h64, w64 = leaves(h0.double(), w0.double())
    ref = reference_lce(h64, w64, y, softcap=3.0)
    ref.backward()
    assert max_err(loss, ref) < 1e-5
    assert max_err(h.grad, h64.grad) < 1e-5 * float(h64.grad.abs().max())
    assert max_err(w.grad, w64.grad) < 1e-5 * float(w64.grad.abs().max())


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("spec", ["torch-native", "torch-native(chunked=True)"])
def test_wrapped_kernel_keeps_float64(spec):
    ok, why = xent_core.kernel(spec.split("(")[0]).available()
    if not ok:
        pytest.skip(why)
    h, w, _, y = make_case(23, 9, 37, dtype=torch.float64, ignore_every=5, seed=1)
    h.requires_grad_()
    loss_fn = xent_core.loss("linear-cross-entropy", impl=spec)
    got = loss_fn(h, w, y)
    assert got.dtype == torch.float64
    (gh,) = torch.autograd.grad(got, [h])
    h64 = h.detach().clone().requires_grad_()
    ref = reference_lce(h64, w, y)
    (rh,) = torch.autograd.grad(ref, [h64])
    assert abs(float(got.detach()) - float(ref.detach())) < 1e-12
    assert float((gh - rh).abs().max()) < 1e-12


def test_apple_cce_returns_float64_for_float64_inputs(monkeypatch):
    """cut-cross-entropy computes in float32; the adapter hands back float64 (documented)."""
    from xent_cce.adapters.peers import AppleCCEKernel

    def fake_call(self, hidden, classifier, targets, bias, **kw):  # what the peer returns
        z = (hidden @ classifier.T).float()
        per = torch.nn.functional.cross_entropy(
            z, targets, ignore_index=kw["ignore_index"], reduction="none"
        )
        return per if kw["reduction"] == "none" else per.sum()

    monkeypatch.setattr(AppleCCEKernel, "available", lambda self: (True, "stub"))
    monkeypatch.setattr(AppleCCEKernel, "_call", fake_call)
    h, w, _, y = make_case(13, 6, 29, dtype=torch.float64, ignore_every=4, seed=2)
    h.requires_grad_()
    for reduction in ("mean", "sum", "none"):
        loss, _ = AppleCCEKernel().linear_cross_entropy(h, w, y, reduction=reduction)
        assert loss.dtype == torch.float64
        ref = reference_lce(h.detach(), w, y, reduction=reduction)
        assert max_err(loss.detach(), ref) < 1e-5
    (g,) = torch.autograd.grad(loss.sum(), [h])
    assert g.dtype == torch.float64
