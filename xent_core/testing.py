"""The plugin author kit: an isolated registry and a conformance check for losses.

Use it in your plugin's tests::

    from xent_core.testing import isolated_registry, check_loss

    def test_my_loss_conforms():
        with isolated_registry("my_plugin"):
            check_loss(
                lambda reduction: xent_core.loss("my-loss", reduction=reduction),
                inputs={"logits": torch.randn(7, 5), "targets": torch.randint(0, 5, (7,))},
                reference=my_float64_formula,   # (reduction=..., **float64 inputs) -> tensor
            )
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .registry import PluginSource, Registry, set_registry

__all__ = ["ConformanceReport", "check_loss", "isolated_registry"]


def _returning(module: ModuleType) -> Callable[[], object]:
    return lambda: module


@contextlib.contextmanager
def isolated_registry(
    *plugins: str | ModuleType | tuple[str, str | ModuleType],
    env: Mapping[str, str] | None = None,
) -> Iterator[Registry]:
    """A registry holding only ``plugins``, installed as the process default inside the block.

    Each plugin is a module, an import path, or ``(plugin_name, module_or_path)``. Entry points
    are not read, so tests see exactly the plugins they name.
    """
    sources = []
    for item in plugins:
        name, target = item if isinstance(item, tuple) else (None, item)
        if isinstance(target, ModuleType):
            module_name = target.__name__
            sources.append(
                PluginSource(
                    name or module_name.rpartition(".")[2], module_name, loader=_returning(target)
                )
            )
        else:
            sources.append(PluginSource(name or target.rpartition(".")[2], target))
    registry = Registry(sources, env=env or {})
    previous = set_registry(registry)
    try:
        yield registry
    finally:
        set_registry(previous)


@dataclass
class ConformanceReport:
    """What :func:`check_loss` verified, with the largest deviations seen."""

    reductions: list[str] = field(default_factory=list)
    max_value_error: float = 0.0
    max_grad_error: float = 0.0
    checks: list[str] = field(default_factory=list)


def _to64(inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            out[k] = v.detach().to(torch.float64).requires_grad_(True)
        elif isinstance(v, torch.Tensor):
            out[k] = v.clone()
        else:
            out[k] = v
    return out


def check_loss(
    factory: Callable[..., Any],
    inputs: Mapping[str, Any],
    reference: Callable[..., Any],
    *,
    reductions: tuple[str, ...] = ("mean", "sum", "none"),
    grad_inputs: tuple[str, ...] | None = None,
    atol: float = 1e-8,
    rtol: float = 1e-6,
) -> ConformanceReport:
    """Check a loss against a float64 reference; raise ``AssertionError`` on the first failure.

    ``factory(reduction=r)`` builds the loss for each reduction in ``reductions``;
    ``reference(reduction=r, **inputs)`` computes the expected value in float64 with autograd.
    Verified: the loss runs on the given inputs; ``mean``/``sum`` give scalars and ``none`` gives
    the reference's shape; values on float64 copies of the inputs match the reference; the loss
    is differentiable and its gradients w.r.t. ``grad_inputs`` (default: every floating input)
    match the reference's; values and gradients on the original dtype are finite.
    """
    import torch

    report = ConformanceReport()
    float_names = [
        k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
    ]
    grad_names = list(grad_inputs if grad_inputs is not None else float_names)
    for r in reductions:
        loss = factory(reduction=r)
        # 1. runs in the given dtype and gives finite values / gradients
        given = {
            k: (v.detach().clone().requires_grad_(k in grad_names) if k in float_names else v)
            for k, v in inputs.items()
        }
        out = loss(**given)
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert isinstance(out, torch.Tensor), (
            f"[{r}] loss returned {type(out).__name__}, not a tensor"
        )
        if r in ("mean", "sum"):
            assert out.dim() == 0, f"[{r}] expected a scalar, got shape {tuple(out.shape)}"
        assert torch.isfinite(out).all(), f"[{r}] non-finite loss {out}"
        out.sum().backward()  # type: ignore[no-untyped-call]
        for k in grad_names:
            g = given[k].grad
            assert g is not None, (
                f"[{r}] no gradient reached input {k!r}: the loss is not differentiable"
            )
            assert torch.isfinite(g).all(), f"[{r}] non-finite gradient for {k!r}"
        # 2. float64 values and gradients agree with the reference
        ours64, ref64 = _to64(inputs), _to64(inputs)
        got = loss(**ours64)
        got = got[0] if isinstance(got, (tuple, list)) else got
        want = reference(reduction=r, **ref64)
        assert got.shape == want.shape, (
            f"[{r}] shape {tuple(got.shape)} != reference {tuple(want.shape)}"
        )
        err = (got.detach().double() - want.detach()).abs()
        bound = atol + rtol * want.detach().abs()
        assert bool((err <= bound).all()), (
            f"[{r}] value differs from reference by {err.max().item():.3e}"
        )
        report.max_value_error = max(
            report.max_value_error, float(err.max()) if err.numel() else 0.0
        )
        seed = torch.randn_like(want) if want.dim() else torch.ones_like(want)
        got_grads = torch.autograd.grad(
            (got * seed).sum(), [ours64[k] for k in grad_names], allow_unused=True
        )
        want_grads = torch.autograd.grad(
            (want * seed).sum(), [ref64[k] for k in grad_names], allow_unused=True
        )
        for k, g, w in zip(grad_names, got_grads, want_grads):
            g = torch.zeros_like(ours64[k]) if g is None else g
            w = torch.zeros_like(ref64[k]) if w is None else w
            gerr = (g - w).abs()
            gbound = atol + rtol * w.abs()
            assert bool((gerr <= gbound).all()), (
                f"[{r}] gradient w.r.t. {k!r} differs from reference by {gerr.max().item():.3e}"
            )
            report.max_grad_error = max(
                report.max_grad_error, float(gerr.max()) if gerr.numel() else 0.0
            )
        report.reductions.append(r)
    report.checks = [
        "runs",
        "shape",
        "finite",
        "differentiable",
        "value==reference",
        "grad==reference",
    ]
    return report
