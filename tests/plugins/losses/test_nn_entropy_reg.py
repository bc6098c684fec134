"""nn-entropy-reg (KoLeo and MEE forms) vs the spec's reference values and float64 numpy oracles
(lightly's KoLeoLoss peer is not installable next to torch 2.13 here: its torchvision build does
not load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64
SPEC_Z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.0]], dtype=F64)


def koleo_oracle(z: np.ndarray, eps: float, group: int | None = None) -> np.ndarray:
    """Per-row -log(d_i + eps) with d_i the distance to the nearest other row of its group."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    g = group or len(z)
    out = []
    for start in range(0, len(z), g):
        block = z[start : start + g]
        for i in range(len(block)):
            d = min(np.linalg.norm(block[i] - block[j]) for j in range(len(block)) if j != i)
            out.append(-np.log(d + eps))
    return np.array(out)


def mee_within_oracle(z: np.ndarray, eps: float) -> float:
    d = [min(np.mean((z[i] - z[j]) ** 2) for j in range(len(z)) if j != i) for i in range(len(z))]
    return float(-np.log(np.mean(d) + eps))


def test_spec_koleo_reference():
    per = xent_core.loss("nn-entropy-reg", eps=0.0, reduction="none")(SPEC_Z)
    want = [0.1106007715, 1.3338429247, 0.1106007715, 1.4142135624]
    np.testing.assert_allclose(torch.exp(-per).numpy(), want, atol=1e-10)
    # the spec's value includes eps = 1e-8 (without it: ~5e-8 higher)
    assert float(xent_core.loss("nn-entropy-reg")(SPEC_Z)) == pytest.approx(0.9422546126, abs=1e-10)
    no_eps = xent_core.loss("nn-entropy-reg", eps=0.0)(SPEC_Z)
    assert float(no_eps) == pytest.approx(koleo_oracle(SPEC_Z.numpy(), 0.0).mean(), rel=1e-13)
    assert float(no_eps) - 0.9422546126 == pytest.approx(4.9e-8, abs=1e-9)


def test_spec_mee_within_batch_reference():
    loss = xent_core.loss("nn-entropy-reg", mode="mee", buffer_size=0, eps=0.0)
    assert float(loss(SPEC_Z)) == pytest.approx(0.7819783943, abs=1e-10)
    assert mee_within_oracle(SPEC_Z.numpy(), 0.0) == pytest.approx(0.7819783943, abs=1e-10)


@pytest.mark.parametrize(("n", "d", "group"), [(7, 3, None), (12, 5, 4), (9, 2, 3), (2, 4, None)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_koleo_random_inputs_match_the_oracle(n, d, group, reduction):
    g = torch.Generator().manual_seed(n * 10 + d)
    z = torch.randn(n, d, generator=g, dtype=F64)
    got = xent_core.loss("nn-entropy-reg", group_size=group, reduction=reduction)(z)
    per = koleo_oracle(z.numpy(), 1e-8, group)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_mee_within_batch_random_inputs():
    g = torch.Generator().manual_seed(4)
    for n, d in [(5, 3), (11, 6)]:
        z = torch.randn(n, d, generator=g, dtype=F64)
        got = xent_core.loss("nn-entropy-reg", mode="mee", buffer_size=0)(z)
        assert float(got) == pytest.approx(mee_within_oracle(z.numpy(), 1e-8), rel=1e-12)


def test_mee_replay_buffer_follows_a_fifo_oracle():
    size, b, d, seed = 3, 4, 2, 9
    memory = list(
        (
            torch.rand((size, b, d), generator=torch.Generator().manual_seed(seed), dtype=F64) * 2
            - 1
        ).numpy()
    )  # the documented initialisation: U(-1, 1) from `seed`
    loss = xent_core.loss("nn-entropy-reg", mode="mee", buffer_size=size, seed=seed)
    g = torch.Generator().manual_seed(1)
    for step in range(5):
        z = torch.randn(b, d, generator=g, dtype=F64)
        dist = [min(np.mean((z.numpy()[i] - m[i]) ** 2) for m in memory) for i in range(b)]
        want = -np.log(np.mean(dist) + 1e-8)
        assert float(loss(z)) == pytest.approx(want, rel=1e-12), step
        memory = [*memory[1:], z.numpy()]  # oldest batch out, this one in
    loss.eval()  # no update in eval mode
    z = torch.randn(b, d, generator=g, dtype=F64)
    assert float(loss(z)) == float(loss(z))
    with pytest.raises(BadInputError):
        loss(torch.randn(b + 1, d, dtype=F64))  # the buffer is per batch position


@pytest.mark.parametrize(
    "params",
    [
        {"reduction": "none"},
        {"group_size": 3, "reduction": "none"},
        {"normalize": False, "reduction": "none"},
        {"mode": "mee", "buffer_size": 0},
        {"mode": "mee", "buffer_size": 4, "normalize": True},
    ],
)
def test_gradcheck_float64(params):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    loss = xent_core.loss("nn-entropy-reg", **params)
    loss(torch.randn(6, 3, generator=g, dtype=F64))  # MEE: one batch in the buffer, then frozen
    loss.eval()
    assert torch.autograd.gradcheck(loss, (z,), eps=1e-6, atol=1e-6)


def test_duplicates_give_a_finite_loss_and_gradient():
    z = torch.tensor([[1.0, 2.0], [1.0, 2.0], [-1.0, 0.5]], dtype=F64, requires_grad=True)
    for mode in ("koleo", "mee"):
        value = xent_core.loss("nn-entropy-reg", mode=mode, buffer_size=0)(z)
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), mode


def test_half_precision_is_computed_in_float32():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    got = xent_core.loss("nn-entropy-reg")(z.to(torch.float16))
    assert got.dtype == torch.float32
    want = koleo_oracle(z.to(torch.float16).double().numpy(), 1e-8).mean()
    assert float(got) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        torch.randn(1, 3),
        torch.randn(4),
        torch.randn(0, 3),
        torch.randint(0, 3, (4, 3)),
        torch.tensor([[1.0, 0.0], [0.0, 0.0]]),  # zero row: cannot normalise
        torch.tensor([[1.0, float("inf")], [0.0, 1.0]]),
    ],
)
def test_bad_inputs(bad):
    with pytest.raises(BadInputError):
        xent_core.loss("nn-entropy-reg")(bad)


def test_rows_not_a_whole_number_of_groups():
    with pytest.raises(BadInputError):
        xent_core.loss("nn-entropy-reg", group_size=4)(torch.randn(6, 3))


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "x"},
        {"eps": -1.0},
        {"group_size": 1},
        {"buffer_size": -1},
        {"normalize": "yes"},
        {"mode": "mee", "reduction": "none"},
        {"mode": "mee", "group_size": 4},
    ],
)
def test_bad_parameters(params):
    with pytest.raises(BadParameterError):
        xent_core.loss("nn-entropy-reg", **params)
