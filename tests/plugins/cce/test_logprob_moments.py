"""``logprob-moments`` against float64 materialised logits: values, gradients, precision, errors."""

from __future__ import annotations

import pytest
import torch
from lce_reference import make_case
from xent_cce.torch.moments import logprob_moments

import xent_core

F64 = torch.float64


def _reference(h, w, b=None, y=None, *, softcap=None, logit_scale=1.0, ignore_index=-100):
    """The three moments from the full (N, V) log-softmax (autograd-friendly, any dtype)."""
    z = h @ w.T
    if b is not None:
        z = z + b
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    logp = torch.log_softmax(z, -1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    var = (p * (logp + ent[..., None]).square()).sum(-1)
    tgt = None
    if y is not None:
        valid = y != ignore_index
        picked = logp.gather(-1, torch.where(valid, y, 0)[..., None])[..., 0]
        tgt = torch.where(valid, picked, torch.zeros_like(picked))
    return tgt, ent, var


def test_published_fixture():
    """Wave-2 spec section 2.4 fixture: log p, mu = -H and sigma = sqrt(Var) of five rows."""
    logits = torch.tensor(
        [[2, 1, 0, -1], [0, 0, 0, 0], [3, 0, 0, 0], [1, 2, 3, 4], [0.5, 0, -0.5, 1]], dtype=F64
    )
    y = torch.tensor([0, 2, 1, 3, 1])
    for chunk in (1 << 24, 3):  # whole rows, and one-column vocabulary blocks merged pairwise
        lp, ent, var = logprob_moments(logits, torch.eye(4, dtype=F64), y, chunk_elements=chunk)
        want_lp = [-0.4401896986, -1.3862943611, -3.1392063142, -0.4401896986, -1.7873386717]
        want_mu = [-0.9475369640, -1.3862943611, -0.5290607945, -0.9475369640, -1.2450504275]
        want_sd = [0.7852300777, 0, 1.0087501797, 0.7852300777, 0.5053344054]
        torch.testing.assert_close(lp, torch.tensor(want_lp, dtype=F64), rtol=0, atol=1e-9)
        torch.testing.assert_close(-ent, torch.tensor(want_mu, dtype=F64), rtol=0, atol=1e-9)
        torch.testing.assert_close(var.sqrt(), torch.tensor(want_sd, dtype=F64), rtol=0, atol=1e-9)


@pytest.mark.parametrize("chunk", [1 << 24, 700], ids=["rows", "vocab-blocks"])
@pytest.mark.parametrize(
    "opts", [{}, {"softcap": 3.0, "logit_scale": 0.7}], ids=["plain", "softcap-scale"]
)
def test_matches_float64_materialised_logits_on_odd_shapes(chunk, opts):
    h, w, b, y = make_case(3 * 13, 11, 211, bias=True, ignore_every=5, seed=7)
    h, y = h.reshape(3, 13, 11), y.reshape(3, 13)
    got = logprob_moments(h, w, y, b, chunk_elements=chunk, **opts)
    ref = _reference(h.double(), w.double(), b.double(), y, **opts)
    assert got.entropy.shape == (3, 13) and got.entropy.dtype == torch.float32
    for g, r in zip(got, ref):
        assert float((g.double() - r).abs().max()) < 2e-5 * max(1.0, float(r.abs().max()))
    assert bool((got.logp_target[y == -100] == 0).all())


def test_gradients_match_autograd_through_the_materialised_logits():
    h, w, b, y = make_case(9, 6, 37, F64, bias=True, ignore_every=4, seed=3)
    leaves = [t.clone().requires_grad_() for t in (h, w, b)]
    g = torch.Generator().manual_seed(0)
    up = [torch.randn(9, dtype=F64, generator=g) for _ in range(3)]
    opts = {"softcap": 2.5, "logit_scale": 1.3}
    got = logprob_moments(*leaves[:2], y, leaves[2], chunk_elements=40, **opts)
    ours = torch.autograd.grad(sum((o * u).sum() for o, u in zip(got, up)), leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (h, w, b)]
    ref = _reference(ref_leaves[0], ref_leaves[1], ref_leaves[2], y, **opts)
    theirs = torch.autograd.grad(sum((o * u).sum() for o, u in zip(ref, up)), ref_leaves)
    for a, r in zip(ours, theirs):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-11)


def test_gradcheck_float64():
    h, w, b, y = make_case(5, 4, 9, F64, bias=True, ignore_every=3, seed=1)
    leaves = tuple(t.clone().requires_grad_() for t in (h, w, b))

    def fn(h, w, b):
        return tuple(logprob_moments(h, w, y, b, softcap=4.0, chunk_elements=20))

    assert torch.autograd.gradcheck(fn, leaves, fast_mode=True)


def test_no_cancellation_for_large_shared_offsets():
    """fp32 logits around 3000: E[z^2] - E[z]^2 would lose every digit; the merge does not."""
    h, w, _, y = make_case(17, 8, 301, seed=5)
    b = torch.full((301,), 3000.0)
    for chunk in (1 << 24, 500):
        _, ent, var = logprob_moments(h, w, y, b, chunk_elements=chunk)
        _, ref_ent, ref_var = _reference(h.double(), w.double(), b.double(), y)
        assert float(((var.double() - ref_var) / ref_var).abs().max()) < 1e-4
        assert float((ent.double() - ref_ent).abs().max()) < 1e-4


def test_without_targets_and_uniform_rows():
    h = torch.zeros(4, 3)
    w = torch.randn(10, 3)
    lp, ent, var = logprob_moments(h, w)
    assert lp is None
    torch.testing.assert_close(ent, torch.full((4,), float(torch.log(torch.tensor(10.0)))))
    assert float(var.abs().max()) < 1e-6  # a uniform row: log p is constant


def test_registered_kernel_with_citation_and_cce_torch_method():
    spec = xent_core.info("logprob-moments", "kernel")
    assert "arXiv:2404.02936" in [c.arxiv for c in spec.citations]
    h, w, _, y = make_case(7, 5, 19, seed=2)
    a = xent_core.kernel("logprob-moments")(h, w, y)
    b = xent_core.kernel("cce-torch", chunk_elements=64).logprob_moments(h, w, y)
    for x, z in zip(a, b):
        torch.testing.assert_close(x, z, rtol=1e-5, atol=1e-6)


def test_bad_input_and_parameters():
    h, w, _, y = make_case(6, 4, 9)
    with pytest.raises(xent_core.BadParameterError, match="softcap"):
        logprob_moments(h, w, y, softcap="3")
    with pytest.raises(xent_core.BadParameterError, match="logit_scale"):
        logprob_moments(h, w, y, logit_scale=0)
    with pytest.raises(xent_core.BadInputError, match="D="):
        logprob_moments(h, w[:, :3], y)
    with pytest.raises(xent_core.BadInputError, match="out of range"):
        logprob_moments(h, w, torch.full((6,), 9))
    bad = w.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(xent_core.BadInputError, match="classifier contains NaN"):
        logprob_moments(h, bad, y)
