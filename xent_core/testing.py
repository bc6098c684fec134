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

:func:`check_loss` also checks the bad-input contract every xent loss keeps (see
:func:`check_bad_inputs`): NaN/inf inputs, out-of-range targets, wrong dtypes and shapes raise a
:class:`~xent_core.XentError`; an empty batch gives an error or a finite 0; a batch whose targets
are all ``ignore_index`` gives 0 with a zero gradient.

A component whose inputs are unusual declares valid ones itself (an ``example_inputs`` static
method, see :mod:`xent_core._examples`); :func:`example_inputs` reads them, so your tests and
xent's registry-wide sweeps drive it with the same data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

from ._examples import example_inputs
from .registry import PluginSource, Registry, set_registry

__all__ = [
    "BAD_INPUT_CHECKS",
    "ConformanceReport",
    "check_bad_inputs",
    "check_loss",
    "example_inputs",
    "isolated_registry",
]


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
    bad_inputs: bool = True,
    ignore_index: int | None = -100,
) -> ConformanceReport:
    """Check a loss against a float64 reference; raise ``AssertionError`` on the first failure.

    ``factory(reduction=r)`` builds the loss for each reduction in ``reductions``;
    ``reference(reduction=r, **inputs)`` computes the expected value in float64 with autograd.
    Verified: the loss runs on the given inputs; ``mean``/``sum`` give scalars and ``none`` gives
    the reference's shape; values on float64 copies of the inputs match the reference; the loss
    is differentiable and its gradients w.r.t. ``grad_inputs`` (default: every floating input)
    match the reference's; values and gradients on the original dtype are finite. Then, unless
    ``bad_inputs`` is false, the bad-input contract of :func:`check_bad_inputs` (``ignore_index``:
    the id that marks ignored targets, ``None`` if the loss has none).
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
    if bad_inputs:
        report.checks += check_bad_inputs(
            factory, inputs, reductions=reductions, ignore_index=ignore_index
        )
    return report


# --------------------------------------------------------------------------- bad-input contract
#: the groups of :func:`check_bad_inputs`
BAD_INPUT_CHECKS: tuple[str, ...] = (
    "nan",
    "inf",
    "dtype",
    "range",
    "shape",
    "empty",
    "all-ignored",
)

#: inputs that are not per-item (their first dim is not the batch): never emptied or truncated
PARAMETER_INPUTS = frozenset({"classifier", "bias", "teacher_classifier", "teacher_bias"})


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _expect_error(case: str, call: Callable[[], Any]) -> None:
    """``call()`` must raise a ``XentError``: not a raw exception, not a (NaN) value."""
    from .checks import input_checks
    from .errors import XentError

    try:
        with input_checks(True):
            out = _first(call())
    except XentError:
        return
    except Exception as exc:
        raise AssertionError(
            f"[{case}] raised a raw {type(exc).__name__} ({exc}) instead of a xent_core.XentError"
        ) from exc
    raise AssertionError(f"[{case}] no XentError; the loss returned {out!r}")


def _build(factory: Callable[..., Any], reduction: str) -> Any:
    """``factory(reduction=...)``, or ``None`` when the loss refuses that reduction."""
    from .errors import BadParameterError

    try:
        return factory(reduction=reduction)
    except BadParameterError:
        return None  # e.g. a loss that couples the items of a batch has no 'none'


def _class_targets(inputs: Mapping[str, Any]) -> bool:
    """``targets`` are integer class ids for ``logits`` (shape = logits' without the last dim)."""
    t, z = inputs.get("targets"), inputs.get("logits")
    return (
        t is not None
        and not t.is_floating_point()
        and (z is None or tuple(t.shape) == tuple(z.shape[:-1]))
    )


def _num_classes(inputs: Mapping[str, Any]) -> int | None:
    for name in ("logits", "teacher_logits"):
        if name in inputs:
            return int(inputs[name].shape[-1])
    if "classifier" in inputs:
        return int(inputs["classifier"].shape[0])
    return None


def check_bad_inputs(
    factory: Callable[..., Any],
    inputs: Mapping[str, Any],
    *,
    reductions: tuple[str, ...] = ("mean", "sum", "none"),
    ignore_index: int | None = -100,
    checks: Collection[str] = BAD_INPUT_CHECKS,
    nan_marks_ignored: Collection[str] = (),
) -> list[str]:
    """Check the bad-input contract of a loss; raise ``AssertionError`` on the first breach.

    ``factory(reduction=r)`` builds the loss; ``inputs`` are valid inputs by name (see the input
    names in the guide: ``logits``, ``targets``, ``hidden``, ``classifier``, ...). Checked, with
    data-dependent input checks on:

    - NaN and inf in each floating input raise a ``XentError`` (never a NaN loss);
    - integer ``targets`` outside ``[0, C)`` (other than ``ignore_index``) raise;
    - integer-typed floating inputs (``int64`` logits) and float class-id targets raise;
    - ``targets`` with one item too few raise;
    - an empty batch raises or gives a finite 0 (``mean``/``sum``) / an empty tensor (``none``);
    - targets that are all ``ignore_index`` give 0 with finite, all-zero gradients.

    Any other exception counts as a failure: the contract is a ``XentError`` or a right number.
    ``checks`` selects groups among :data:`BAD_INPUT_CHECKS`. ``nan_marks_ignored`` names inputs
    whose NaN entries the loss documents as "ignore this item" (regression ``values``): there a
    NaN must give a finite loss instead of an error. Returns the names of the checks that ran.
    """
    unknown = set(checks) - set(BAD_INPUT_CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; choose among {BAD_INPUT_CHECKS}")
    import torch

    from .checks import input_checks
    from .errors import XentError

    ran: list[str] = []
    first = reductions[0] if reductions else "mean"

    def call(bad: Mapping[str, Any], reduction: str = first) -> Any:
        return factory(reduction=reduction)(**bad)

    def with_(name: str, value: Any) -> dict[str, Any]:
        return {**inputs, name: value}

    floats = [k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    # poison an item that counts: NaN in an ignored row may legitimately be ignored
    row, n_items = 0, 0
    if _class_targets(inputs):
        flat = inputs["targets"].reshape(-1)
        n_items = flat.numel()
        kept = (flat != ignore_index).nonzero() if ignore_index is not None else flat[:1, None]
        row = int(kept[0, 0]) if kept.numel() else 0
    for name in floats:
        for label, bad_value in (("nan", float("nan")), ("inf", float("inf"))):
            if label not in checks:
                continue
            t = inputs[name].detach().clone()
            lead = tuple(inputs["targets"].shape) if n_items else ()
            if n_items and name not in PARAMETER_INPUTS and tuple(t.shape[: len(lead)]) == lead:
                t.view(n_items, -1)[row, 0] = bad_value  # the clone is contiguous: a view
            else:
                t.view(-1)[0] = bad_value
            if label == "nan" and name in nan_marks_ignored:
                with input_checks(True):
                    out = _first(call(with_(name, t)))
                assert torch.isfinite(out).all(), f"[nan in {name}] marks an ignored item: {out!r}"
            else:
                _expect_error(f"{label} in {name}", partial(call, with_(name, t)))
            ran.append(f"{label}:{name}")
        if "dtype" in checks:
            as_int = inputs[name].detach().round().to(torch.int64)
            _expect_error(f"int64 {name}", partial(call, with_(name, as_int)))
            ran.append(f"dtype:{name}")
    n_classes = _num_classes(inputs)
    if _class_targets(inputs):
        targets = inputs["targets"]
        if n_classes is not None and "range" in checks:
            lows = [v for v in (-1, -2, -3) if v != ignore_index][:1]
            for value in [n_classes, *lows]:
                t = targets.clone()
                t.view(-1)[0] = value
                _expect_error(f"target {value}", partial(call, with_("targets", t)))
                ran.append(f"range:{value}")
        if "dtype" in checks:
            _expect_error("float targets", lambda: call(with_("targets", targets.float())))
            ran.append("dtype:targets")
        if "shape" in checks and targets.dim() >= 1 and targets.shape[0] > 1:
            _expect_error("targets one item short", lambda: call(with_("targets", targets[1:])))
            ran.append("shape:targets")
    # empty batch: an error, or a finite 0
    per_item = {
        k
        for k, v in inputs.items()
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and k not in PARAMETER_INPUTS
    }
    if per_item and "empty" in checks:
        empty = {k: (v[:0] if k in per_item else v) for k, v in inputs.items()}
        for r in reductions:
            loss = _build(factory, r)
            if loss is None:
                continue
            try:
                with input_checks(True):
                    out = _first(loss(**empty))
            except XentError:
                continue
            except Exception as exc:
                raise AssertionError(
                    f"[empty batch, {r}] raised a raw {type(exc).__name__} ({exc}) instead of a "
                    "XentError or a finite value"
                ) from exc
            if r == "none":
                assert out.numel() == 0, f"[empty batch, none] expected no items, got {out!r}"
            else:
                assert torch.isfinite(out).all() and float(out) == 0.0, (
                    f"[empty batch, {r}] expected 0 or a XentError, got {out!r}"
                )
        ran.append("empty")
    # all targets ignored: 0 with a zero gradient
    if ignore_index is not None and _class_targets(inputs) and "all-ignored" in checks:
        for r in reductions:
            given = {
                k: (v.detach().clone().requires_grad_(True) if k in floats else v)
                for k, v in inputs.items()
            }
            given["targets"] = torch.full_like(inputs["targets"], ignore_index)
            loss = _build(factory, r)
            if loss is None:
                continue
            try:
                with input_checks(True):
                    out = _first(loss(**given))
            except Exception as exc:
                raise AssertionError(
                    f"[all targets ignored, {r}] raised {type(exc).__name__} ({exc}); expected 0"
                ) from exc
            assert torch.isfinite(out).all() and bool((out == 0).all()), (
                f"[all targets ignored, {r}] expected 0, got {out!r}"
            )
            if out.requires_grad:
                out.sum().backward()
                for k in floats:
                    g = given[k].grad
                    assert g is None or bool((g == 0).all()), (
                        f"[all targets ignored, {r}] gradient w.r.t. {k!r} is not zero"
                    )
        ran.append("all-ignored")
    return ran
