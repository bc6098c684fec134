"""Single-process checks of xent_cce.distributed: chunked shard primitives, num_items, errors.

The multi-process (gloo) checks live in test_distributed_spawn.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lce_reference import make_case
from xent_cce.distributed import (
    ChunkedShardKernel,
    distributed_linear_cross_entropy,
    global_num_items,
    module_forward,
    shard_classifier,
    uses_distributed_path,
    vocab_parallel_linear_cross_entropy,
)
from xent_cce.distributed import local as _dist_local

import xent_core
from xent_core import BadInputError, BadParameterError, NotAvailableError

F64 = torch.float64


def _inputs(n: int = 13, d: int = 7, v: int = 11, seed: int = 0, bias: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, v, (n,), generator=g)
    targets[[1, n - 2]] = -100
    return dict(
        hidden=torch.randn(n, d, generator=g, dtype=F64).requires_grad_(True),
        classifier=(torch.randn(v, d, generator=g, dtype=F64) * 0.8).requires_grad_(True),
        bias=torch.randn(v, generator=g, dtype=F64).requires_grad_(True) if bias else None,
        targets=targets,
    )


def _naive_logits(h: torch.Tensor, w: torch.Tensor, b: Any, cap: Any, scale: float) -> torch.Tensor:
    z = h @ w.T
    if b is not None:
        z = z + b
    z = z * scale
    return z if cap is None else cap * torch.tanh(z / cap)


def _naive_loss(inp: dict, *, cap=None, scale=1.0, eps=0.0, zl=0.0, reduction="mean", n_items=None):
    z = _naive_logits(inp["hidden"], inp["classifier"], inp["bias"], cap, scale)
    t = inp["targets"]
    valid = t != -100
    per = F.cross_entropy(z, t, ignore_index=-100, label_smoothing=eps, reduction="none")
    per = per + zl * torch.logsumexp(z, 1).square() * valid
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (n_items if n_items is not None else valid.sum().clamp_min(1))


@pytest.mark.parametrize("chunk_elements", [1, 13 * 3, 10_000])
@pytest.mark.parametrize("cap", [None, 2.5])
def test_chunked_logsumexp_and_its_gradients_match_naive(chunk_elements: int, cap: Any) -> None:
    inp = _inputs()
    k = ChunkedShardKernel(chunk_elements=chunk_elements)
    args = (inp["hidden"], inp["classifier"], inp["bias"])
    got = k.logsumexp(*args, softcap=cap, logit_scale=0.7)
    ref = torch.logsumexp(_naive_logits(*args, cap, 0.7), dim=1)
    upstream = torch.randn_like(ref)
    g_got = torch.autograd.grad((got * upstream).sum(), args)
    g_ref = torch.autograd.grad((ref * upstream).sum(), args)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_chunked_logit_sum_with_softcap_matches_naive_and_gradchecks() -> None:
    inp = _inputs(n=5, d=3, v=7)
    args = (inp["hidden"], inp["classifier"], inp["bias"])
    got = _dist_local.logit_sum(*args, softcap=1.5, logit_scale=1.2, chunk_elements=5 * 2)
    torch.testing.assert_close(got, _naive_logits(*args, 1.5, 1.2).sum(1), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda h, w, b: _dist_local.logit_sum(h, w, b, softcap=1.5, chunk_elements=10), args
    )


@pytest.mark.parametrize(
    "opts",
    [
        dict(reduction="mean"),
        dict(cap=3.0, scale=0.7, reduction="sum"),
        dict(cap=2.0, eps=0.1, zl=1e-2, reduction="none"),
        dict(eps=0.2, reduction="mean"),
    ],
)
def test_local_path_matches_naive_float64(opts: dict) -> None:
    inp = _inputs()
    got, lse = distributed_linear_cross_entropy(
        inp["hidden"], inp["classifier"], inp["targets"], inp["bias"],
        local_kernel=ChunkedShardKernel(chunk_elements=20), softcap=opts.get("cap"),
        logit_scale=opts.get("scale", 1.0), label_smoothing=opts.get("eps", 0.0),
        z_loss=opts.get("zl", 0.0), reduction=opts["reduction"],
    )  # fmt: skip
    ref = _naive_loss(inp, **opts)
    args = (inp["hidden"], inp["classifier"], inp["bias"])
    upstream = torch.randn_like(ref)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    for a, b in zip(
        torch.autograd.grad((got * upstream).sum(), args),
        torch.autograd.grad((ref * upstream).sum(), args),
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    z = _naive_logits(*args, opts.get("cap"), opts.get("scale", 1.0))
    valid = inp["targets"] != -100
    ref_lse = torch.where(valid, torch.logsumexp(z, 1), 0.0).float()
    torch.testing.assert_close(lse, ref_lse.detach())  # 0 where ignored, as the cce-* kernels


def test_gradcheck_every_option_float64() -> None:
    inp = _inputs(n=6, d=4, v=5)
    kernel = ChunkedShardKernel(chunk_elements=12)

    def f(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return distributed_linear_cross_entropy(
            h, w, inp["targets"], b, local_kernel=kernel, softcap=2.0, logit_scale=1.3,
            label_smoothing=0.15, z_loss=0.05, num_items=4.5,
        )[0]  # fmt: skip

    assert torch.autograd.gradcheck(f, (inp["hidden"], inp["classifier"], inp["bias"]))


def test_float32_and_bfloat16_inputs_are_computed_in_float32() -> None:
    inp = _inputs(n=33, d=16, v=37)
    ref = _naive_loss(inp, cap=5.0).detach()
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 3e-2)):
        h = inp["hidden"].detach().to(dtype).requires_grad_(True)
        w = inp["classifier"].detach().to(dtype).requires_grad_(True)
        b = inp["bias"].detach().to(dtype)
        loss, lse = distributed_linear_cross_entropy(h, w, inp["targets"], b, softcap=5.0)
        loss.backward()
        assert loss.dtype == torch.float32 and lse.dtype == torch.float32
        assert h.grad.dtype == dtype and w.grad.dtype == dtype
        assert abs(loss.item() - ref.item()) <= tol * max(1.0, abs(ref.item()))


def test_num_items_divides_the_sum_and_zero_items_give_zero_not_nan() -> None:
    inp = _inputs()
    total = _naive_loss(inp, reduction="sum")
    for n_items in (17, 4.5, torch.tensor(23)):
        got, _ = distributed_linear_cross_entropy(
            inp["hidden"], inp["classifier"], inp["targets"], inp["bias"], num_items=n_items
        )
        torch.testing.assert_close(got, total / float(n_items), rtol=0, atol=1e-12)
    targets = torch.full_like(inp["targets"], -100)
    h = inp["hidden"].detach().requires_grad_(True)
    got, _ = distributed_linear_cross_entropy(h, inp["classifier"], targets, num_items=0)
    got.backward()
    assert got.item() == 0.0 and torch.count_nonzero(h.grad) == 0


class _SummingKernel:
    """A kernel with a fused linear_cross_entropy: the hook must ask it for a sum, then divide."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def logsumexp(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the local path must use linear_cross_entropy when available")

    def linear_cross_entropy(self, hidden, classifier, targets, bias=None, **kw):  # type: ignore[no-untyped-def]
        self.calls.append(kw["reduction"])
        inp = dict(hidden=hidden, classifier=classifier, bias=bias, targets=targets)
        z = _naive_logits(hidden, classifier, bias, None, 1.0)
        return _naive_loss(inp, reduction=kw["reduction"]), torch.logsumexp(z, 1).float()


def test_local_path_asks_a_fused_kernel_for_the_sum_when_num_items_is_given() -> None:
    inp = _inputs()
    kernel = _SummingKernel()
    got, _ = distributed_linear_cross_entropy(
        inp["hidden"], inp["classifier"], inp["targets"], local_kernel=kernel, num_items=9
    )
    assert kernel.calls == ["sum"]
    ref = _naive_loss(dict(inp, bias=None), reduction="sum") / 9
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    distributed_linear_cross_entropy(
        inp["hidden"], inp["classifier"], inp["targets"], local_kernel=kernel
    )
    assert kernel.calls == ["sum", "mean"]


def test_global_num_items_without_a_process_group_is_the_local_count() -> None:
    t = torch.tensor([[1, -100, 3], [-100, -100, 0]])
    assert int(global_num_items(t)) == 3
    assert int(global_num_items(t, ignore_index=0)) == 5


def test_uses_distributed_path() -> None:
    h, w = torch.randn(2, 3), torch.randn(4, 3)
    assert not uses_distributed_path(h, w)
    assert uses_distributed_path(h, w, num_items=3)
    assert uses_distributed_path(h, w, vocab_parallel=object())


def test_bad_inputs_and_parameters_raise_clear_errors() -> None:
    inp = _inputs()
    h, w, t = inp["hidden"], inp["classifier"], inp["targets"]
    call = distributed_linear_cross_entropy
    with pytest.raises(BadParameterError, match="reduction must be one of"):
        call(h, w, t, reduction="avg")
    with pytest.raises(BadParameterError, match="num_items only applies to reduction='mean'"):
        call(h, w, t, reduction="sum", num_items=3)
    with pytest.raises(BadParameterError, match="num_items must be a count"):
        call(h, w, t, num_items=-1)
    with pytest.raises(BadParameterError, match="one-element tensor"):
        call(h, w, t, num_items=torch.tensor([3, 4]))
    with pytest.raises(BadParameterError, match="softcap"):
        call(h, w, t, softcap=0.0)
    with pytest.raises(BadParameterError, match="label_smoothing"):
        call(h, w, t, label_smoothing=1.5)
    with pytest.raises(BadInputError, match="targets shape"):
        call(h, w, t[:-1])
    with pytest.raises(BadInputError, match="integer tensor"):
        call(h, w, t.double())
    with pytest.raises(BadInputError, match="D=7 but classifier rows have D=6"):
        call(h, w[:, :6], t)
    with pytest.raises(BadInputError, match="bias must be"):
        call(h, w, t, w[:, 0][:-1])
    bad = t.clone()
    bad[3] = 11
    with pytest.raises(BadInputError, match="target 11 of token 3"):
        call(h, w, bad)
    builtin = ChunkedShardKernel()
    with pytest.raises(BadInputError, match="target 11 of token 3"):
        call(h, w, bad, local_kernel=builtin)
    unchecked, _ = call(h, w, bad, local_kernel=builtin, check_targets=False)  # no sync, no check
    assert torch.isfinite(unchecked)
    with pytest.raises(BadParameterError, match="needs vocab_start"):
        call(h, w, t, vocab_parallel=object())
    with pytest.raises(BadParameterError, match="local_kernel must be"):
        call(h, w, t, local_kernel=object())
    with pytest.raises(NotAvailableError, match="init_process_group"):
        vocab_parallel_linear_cross_entropy(h, w, t, group=None, vocab_start=0)
    with pytest.raises(BadParameterError, match="vocab_start must be an int"):
        vocab_parallel_linear_cross_entropy(h, w, t, group=None, vocab_start=-1)
    with pytest.raises(NotAvailableError, match="init_process_group"):
        shard_classifier(w)


def test_leading_dims_are_flattened_and_restored_for_reduction_none() -> None:
    inp = _inputs(n=12)
    h = inp["hidden"].reshape(3, 4, -1)
    t = inp["targets"].reshape(3, 4)
    got, lse = distributed_linear_cross_entropy(h, inp["classifier"], t, reduction="none")
    assert got.shape == (3, 4) and lse.shape == (12,)
    ref = _naive_loss(dict(inp, bias=None), reduction="none").reshape(3, 4)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    assert got[0, 1].item() == 0.0  # token 1 is ignored


def test_module_forward_shifts_targets_divides_by_num_items_and_reports_z_loss() -> None:
    import xent_core

    inp = _inputs(n=12)
    lce = xent_core.loss(
        "linear-cross-entropy", shift=True, return_lse=True, z_loss=1e-2, label_smoothing=0.1
    )
    hidden = inp["hidden"].reshape(3, 4, -1)
    targets = inp["targets"].reshape(3, 4)
    loss, lse = module_forward(lce, hidden, inp["classifier"], targets, inp["bias"], num_items=7)
    shifted = torch.cat([targets[:, 1:], torch.full_like(targets[:, :1], -100)], 1).reshape(-1)
    ref_in = dict(inp, targets=shifted)
    ref = _naive_loss(ref_in, eps=0.1, zl=1e-2, reduction="sum") / 7
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-6)
    z = _naive_logits(inp["hidden"], inp["classifier"], inp["bias"], None, 1.0)
    ref_lse = torch.where(shifted != -100, torch.logsumexp(z, 1), 0.0).reshape(3, 4)
    torch.testing.assert_close(lse.double(), ref_lse.detach(), rtol=1e-6, atol=1e-6)
    z_part = (1e-2 * ref_lse.square()).sum() / 7
    torch.testing.assert_close(lce.last_z_loss.double(), z_part.detach(), rtol=1e-5, atol=0)
    assert lce.last_impl == lce.kernel_for(hidden.device)[0]


# --------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("impl", ["cce-torch", "naive", "torch-native"])
def test_num_items_path_returns_zero_lse_at_ignored_tokens(impl):
    if not xent_core.kernel(impl).available()[0]:
        pytest.skip(f"{impl} not available")
    h, w, _, y = make_case(16, 7, 29, ignore_every=3, seed=2)
    h, y = h.reshape(2, 8, 7), y.reshape(2, 8)
    loss_fn = xent_core.loss("linear-cross-entropy", impl=impl, return_lse=True, shift=True)
    loss_a, lse_a = loss_fn(h, w, y)
    loss_b, lse_b = loss_fn(h, w, y, num_items=5)
    shifted = torch.cat([y[:, 1:], torch.full_like(y[:, :1], -100)], 1)
    ignored = shifted == -100
    assert bool(ignored.any()) and bool((~ignored).any())
    assert float(lse_b[ignored].abs().max()) == 0.0
    assert float(lse_a[ignored].abs().max()) == 0.0
    torch.testing.assert_close(lse_b, lse_a)
    n_valid = int((~ignored).sum())
    torch.testing.assert_close(loss_b * 5, loss_a * n_valid, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_items", [None, 6])
def test_num_items_path_validates_inputs_like_the_local_path(num_items):
    # num_items (the data-parallel / accumulation recipe) must not weaken the input checks
    h, w, _, y = make_case(6, 4, 9, seed=5)
    loss_fn = xent_core.loss("linear-cross-entropy")
    kw = {} if num_items is None else {"num_items": num_items}
    bad_h = h.clone()
    bad_h[2, 1] = float("nan")
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        loss_fn(bad_h, w, y, **kw)
    with pytest.raises(xent_core.BadInputError, match="dtype"):
        loss_fn(h, w.half(), y, **kw)
    with pytest.raises(xent_core.BadInputError, match="dtype"):
        loss_fn(h, w, y, torch.zeros(9, dtype=torch.float64), **kw)
    unchecked = xent_core.loss("linear-cross-entropy", check_inputs=False)
    assert torch.isnan(unchecked(bad_h, w, y, **kw))
