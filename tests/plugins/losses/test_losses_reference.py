"""Every loss against its float64 reference: values, gradients, reductions, ignored items,
half precision and (B, T, C) inputs."""

from __future__ import annotations

import zlib

import pytest
import torch
from losses_cases import CASES, Case

REDUCTIONS = ("mean", "sum", "none")


def _ids(case: Case) -> str:
    return case.id


def _call(module, inputs):
    return module(**inputs)


def _with_grad(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(inputs)
    out["logits"] = inputs["logits"].detach().clone().requires_grad_(True)
    return out


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_value_matches_float64_reference(case: Case, reduction: str) -> None:
    gen = torch.Generator().manual_seed(zlib.crc32(f"{case.id}/{reduction}".encode()))
    inputs = case.make_inputs((7,), gen=gen)
    module = case.build(reduction)
    if case.name == "aldr-kl":  # exercise the per-sample state: start from non-uniform lambdas
        module.lambdas.uniform_(0.6 * module.lam0, module.lam0, generator=gen)
    expected = case.reference(inputs, reduction, module)
    got = _call(module, inputs)
    assert got.dtype == torch.float64
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_gradient_matches_float64_reference(case: Case) -> None:
    gen = torch.Generator().manual_seed(11)
    inputs = _with_grad(case.make_inputs((9,), gen=gen))
    module = case.build("mean")
    ref_inputs = _with_grad(inputs)
    expected = case.reference(ref_inputs, "mean", module)
    (g_ref,) = torch.autograd.grad(expected, ref_inputs["logits"])
    (g,) = torch.autograd.grad(_call(module, inputs), inputs["logits"])
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-11)
    valid = case.valid(inputs)
    assert torch.all(g.reshape(len(valid), -1)[~valid] == 0), "ignored items must get no gradient"


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=_ids)
def test_gradcheck(case: Case) -> None:
    gen = torch.Generator().manual_seed(5)
    inputs = case.make_inputs((4,), gen=gen)
    module = case.build("none")
    logits = inputs.pop("logits").requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: module(logits=x, **inputs), (logits,), eps=1e-6, atol=1e-7
    )


def _all_ignored(case: Case, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(inputs)
    if case.kind == "values":
        out["values"] = torch.full_like(inputs["values"], float("nan"))
    else:
        out["targets"] = torch.full_like(inputs["targets"], -100)
    return out


@pytest.mark.parametrize("reduction", ("mean", "sum"))
@pytest.mark.parametrize("case", [c for c in CASES if c.kind != "soft"], ids=_ids)
def test_fully_ignored_batch_is_zero_without_nan(case: Case, reduction: str) -> None:
    inputs = _with_grad(_all_ignored(case, case.make_inputs((2, 3), dtype=torch.float32)))
    module = case.build(reduction)
    if case.name == "aldr-kl":
        before = module.lambdas.clone()
    loss = module(**inputs)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(inputs["logits"].grad == 0)
    if case.name == "aldr-kl":
        assert torch.equal(module.lambdas, before), "ignored items must not update the state"
    empty = case.make_inputs((0,), dtype=torch.float32)
    assert module(**empty).item() == 0.0


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_half_precision_inputs_are_computed_in_float32(case: Case, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    low = {
        k: (v.to(dtype) if v.is_floating_point() else v)
        for k, v in case.make_inputs((6,), gen=gen).items()
    }
    low = _with_grad(low)
    module = case.build("mean")
    exact = {
        k: (v.detach().to(torch.float64) if v.is_floating_point() else v) for k, v in low.items()
    }
    expected = case.reference(exact, "mean", module)
    loss = module(**low)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), expected, rtol=2e-5, atol=2e-6)
    loss.backward()
    grad = low["logits"].grad
    assert grad.dtype == dtype and torch.isfinite(grad.float()).all()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_batch_time_class_inputs_match_flattened(case: Case) -> None:
    gen = torch.Generator().manual_seed(8)
    inputs = case.make_inputs((3, 4), dtype=torch.float32, gen=gen)
    flat = {k: v if k == "classifier" else v.reshape(12, *v.shape[2:]) for k, v in inputs.items()}
    for reduction in REDUCTIONS:
        out = case.build(reduction)(**inputs)
        ref = case.build(reduction)(**flat)
        if reduction == "none":
            assert out.shape == (3, 4)
            ref = ref.reshape(3, 4)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
