"""``cce-triton``: availability, metadata read statically, and clear errors for bad input."""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")

from xent_cce.triton.kernel import CCETritonKernel  # noqa: E402

from xent_core import BadInputError, BadParameterError, NotAvailableError, XentError  # noqa: E402
from xent_core.components import build_spec  # noqa: E402

TARGET = "xent_cce.triton.kernel:CCETritonKernel"
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"
needs_kernel = pytest.mark.skipif(
    not CCETritonKernel().available()[0], reason="cce-triton needs CUDA or TRITON_INTERPRET=1"
)


def test_metadata_is_read_statically():
    spec = build_spec(target=TARGET, name="cce-triton", kind="kernel", plugin="cce")
    assert spec.summary.startswith("Cut Cross-Entropy in Triton")
    assert spec.param_names == ("accumulate",)
    assert [c.arxiv for c in spec.citations] == ["arXiv:2411.09009"]
    assert spec.capabilities["requires"] == ("triton",)
    assert spec.capabilities["differentiable"] is True


def test_available_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes ``import triton`` raise ImportError
    ok, why = CCETritonKernel().available()
    assert not ok and "triton is not installed" in why


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA branch")
def test_available_without_cuda_or_interpreter(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ok, why = CCETritonKernel().available()
    assert not ok and "CUDA" in why and "TRITON_INTERPRET=1" in why
    h = torch.randn(4, 3)
    with pytest.raises(NotAvailableError, match="not available"):
        CCETritonKernel().linear_cross_entropy(
            h, torch.randn(5, 3), torch.zeros(4, dtype=torch.long)
        )


@needs_kernel
def test_available_here_says_where():
    ok, why = CCETritonKernel().available()
    assert ok and ("interpreter" in why if INTERPRET else "on" in why)


def test_bad_accumulate_is_rejected():
    with pytest.raises(BadParameterError, match="accumulate"):
        CCETritonKernel(accumulate="bf16")


def _inputs(n=6, v=11, d=5, dtype=torch.float32):
    return (
        torch.randn(n, d, dtype=dtype, device=DEVICE),
        torch.randn(v, d, dtype=dtype, device=DEVICE),
        torch.randint(0, v, (n,), device=DEVICE),
    )


BAD = {
    "hidden-3d": (lambda h, c, t: (h[None], c, t, None, {}), BadInputError, "hidden must be"),
    "d-mismatch": (lambda h, c, t: (h, c[:, :-1], t, None, {}), BadInputError, "D=5"),
    "targets-shape": (lambda h, c, t: (h, c, t[:-1], None, {}), BadInputError, "targets must have"),
    "targets-float": (lambda h, c, t: (h, c, t.float(), None, {}), BadInputError, "integer"),
    "dtype-mismatch": (lambda h, c, t: (h, c.double(), t, None, {}), BadInputError, "dtype"),
    "int-hidden": (lambda h, c, t: (h.long(), c.long(), t, None, {}), BadInputError, "float16"),
    "bias-shape": (
        lambda h, c, t: (h, c, t, torch.zeros(3, device=DEVICE), {}),
        BadInputError,
        "bias must have shape",
    ),
    "reduction": (
        lambda h, c, t: (h, c, t, None, {"reduction": "avg"}),
        BadParameterError,
        "reduction",
    ),
    "label-smoothing": (
        lambda h, c, t: (h, c, t, None, {"label_smoothing": 1.5}),
        BadParameterError,
        "label_smoothing",
    ),
    "softcap": (lambda h, c, t: (h, c, t, None, {"softcap": -1.0}), BadParameterError, "softcap"),
    "z-loss": (lambda h, c, t: (h, c, t, None, {"z_loss": -0.1}), BadParameterError, "z_loss"),
    "filter-eps": (
        lambda h, c, t: (h, c, t, None, {"filter_eps": "sometimes"}),
        BadParameterError,
        "filter_eps",
    ),
}


@needs_kernel
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_clear_error(case):
    make, err, match = BAD[case]
    h, c, t, b, kw = make(*_inputs())
    with pytest.raises(err, match=match) as info:
        CCETritonKernel().linear_cross_entropy(h, c, t, b, **kw)
    assert isinstance(info.value, XentError)


@needs_kernel
@pytest.mark.parametrize("which", ["classifier", "targets"])
def test_device_mismatch_is_reported(which):
    h, c, t = _inputs()
    if which == "classifier":
        c = c.to("meta")  # any other device: the check runs before anything is computed
    else:
        t = t.to("meta")
    with pytest.raises(BadInputError, match=r"(is|are) on"):
        CCETritonKernel().linear_cross_entropy(h, c, t)


def test_static_availability_says_the_interpreter_refuses_bfloat16(monkeypatch, capsys):
    """``xent list`` / ``xent info`` tell, without importing triton, what the interpreter refuses
    (the refusal itself: test_triton_kernel.py::test_bfloat16_is_refused_in_the_interpreter)."""
    from xent_core import components
    from xent_core.cli import main

    spec = build_spec(target=TARGET, name="cce-triton", kind="kernel", plugin="cce")
    monkeypatch.setattr(components, "cuda_visible", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    ok, why = spec.availability()
    assert ok and "TRITON_INTERPRET=1" in why and "bfloat16 refused" in why
    monkeypatch.delenv("TRITON_INTERPRET")
    ok, why = spec.availability()
    assert not ok and why.startswith(
        "needs cuda (no GPU visible); on the CPU with TRITON_INTERPRET=1"
    )
    assert "bfloat16 refused" in why
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["info", "cce-triton"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("available"))
    assert "emulated (TRITON_INTERPRET=1)" in line and "bfloat16 refused" in line
