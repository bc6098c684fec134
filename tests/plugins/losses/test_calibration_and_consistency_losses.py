"""correctness-aware, cape, symmetric-ce, binary-kd and nt-xent vs the spec and float64 oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_losses.cape import cape_targets

import xent_core
from xent_core import BadInputError, BadParameterError

F64 = torch.float64
LOGITS = torch.tensor(
    [[2, 0.5, -1], [0.2, 0.1, 0], [1.5, 1.4, -0.3], [-0.5, 2.5, 0],
     [0, 0, 3], [1, -1, 0.5], [0.3, 0.9, 0.6], [2.2, -0.4, 0.1]], dtype=F64
)  # fmt: skip
LABELS = torch.tensor([0, 2, 1, 1, 2, 0, 0, 0])


def loss(name, **params):
    return xent_core.loss(name, **params)


# ------------------------------------------------------------------------------ correctness-aware
def ca_oracle(z, base, y, balance=True):
    conf = [max(math.exp(v) for v in row) / sum(math.exp(v) for v in row) for row in z.tolist()]
    k = [
        float(max(range(len(r)), key=r.__getitem__) == t) for r, t in zip(base.tolist(), y.tolist())
    ]
    a = sum(k) / len(k)
    w = [(1 - a if ki else a) if balance and 0 < a < 1 else 1.0 for ki in k]
    return sum(wi * (c - ki) ** 2 for wi, c, ki in zip(w, conf, k)) / sum(w)


@pytest.mark.parametrize(
    "t, balance, want",
    [(1.0, True, 0.1207676496), (1.0, False, 0.1043837683), (1.5, True, 0.1363973045),
     (1.5, False, 0.1298398779)],
)  # fmt: skip
def test_correctness_aware_spec_values(t, balance, want):
    got = loss("correctness-aware", balance=balance)(LOGITS / t, LABELS)
    assert float(got) == pytest.approx(want, abs=1e-10)


def test_correctness_aware_random_oracle_base_logits_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(23, 5, generator=g, dtype=F64) * 2
    y = torch.randint(0, 5, (23,), generator=g)
    scale = torch.rand(23, 1, generator=g, dtype=F64) + 0.3  # a per-sample temperature
    z = base * scale
    got = loss("correctness-aware")(z, y, base_logits=base)
    assert float(got) == pytest.approx(ca_oracle(z, base, y), rel=1e-12)
    x = z.clone().requires_grad_(True)
    ca = loss("correctness-aware")
    assert torch.autograd.gradcheck(lambda v: ca(v, y, base_logits=base), (x,))
    per = loss("correctness-aware", reduction="none")(z, y, base_logits=base)
    assert per.shape == (23,) and float(per.mean()) == pytest.approx(float(got), rel=1e-12)


def test_correctness_aware_degenerate_and_balanced_batches_and_ignore_index():
    y_all_right = LOGITS.argmax(1)
    both = [loss("correctness-aware", balance=b)(LOGITS, y_all_right) for b in (True, False)]
    assert float(both[0]) == pytest.approx(float(both[1]))  # a = 1: the unweighted Brier
    y_half = y_all_right.clone()
    y_half[:4] = (y_half[:4] + 1) % 3  # a = 0.5: weights all equal
    assert float(loss("correctness-aware")(LOGITS, y_half)) == pytest.approx(
        float(loss("correctness-aware", balance=False)(LOGITS, y_half))
    )
    y_ign = LABELS.clone()
    y_ign[0] = -100
    assert float(loss("correctness-aware")(LOGITS, y_ign)) == pytest.approx(
        ca_oracle(LOGITS[1:], LOGITS[1:], LABELS[1:]), rel=1e-12
    )
    with pytest.raises(BadInputError, match="base_logits"):
        loss("correctness-aware")(LOGITS, LABELS, base_logits=LOGITS[:3])
    with pytest.raises(BadParameterError):
        loss("correctness-aware", balance="yes")


# ------------------------------------------------------------------------------ cape
CAPE_P = np.array([0.9, 0.1, 0.4, 0.8, 0.3, 0.6, 0.2, 0.7])
CAPE_Y = np.array([1, 0, 1, 1, 0, 0, 0, 1])


def test_cape_spec_targets_and_loss():
    q = cape_targets(CAPE_P, CAPE_Y, n_bins=2)
    np.testing.assert_allclose(q, [0.75, 0.25, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75])
    z = torch.logit(torch.tensor(CAPE_P, dtype=F64))
    assert float(loss("cape")(z, torch.tensor(q))) == pytest.approx(0.6012687779, abs=1e-10)
    two = torch.stack([torch.zeros_like(z), z], dim=1)  # softmax[:, 1] = sigmoid(z)
    assert float(loss("cape")(two, torch.tensor(q))) == pytest.approx(0.6012687779, abs=1e-10)


def test_cape_kde_targets_match_a_direct_loop():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=40)
    y = (rng.uniform(size=40) < p).astype(int)
    q = cape_targets(p, y, method="kde", sigma=0.2, window=5)
    order = np.argsort(p, kind="stable")
    for rank, i in enumerate(order):
        nb = order[max(0, rank - 5) : rank + 6]
        w = np.exp(-((p[nb] - p[i]) ** 2) / (2 * 0.2**2))
        assert q[i] == pytest.approx(float((w * y[nb]).sum() / w.sum()), rel=1e-12)


def test_cape_gradcheck_reductions_and_errors():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(9, generator=g, dtype=F64, requires_grad=True)
    q = torch.rand(9, generator=g, dtype=F64)
    assert torch.autograd.gradcheck(lambda v: loss("cape")(v, q), (z,))
    per = loss("cape", reduction="none")(z, q)
    want = -(q * torch.log(torch.sigmoid(z)) + (1 - q) * torch.log(1 - torch.sigmoid(z)))
    torch.testing.assert_close(per, want)
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        loss("cape")(z, q + 1)
    with pytest.raises(BadInputError, match="2 columns"):
        loss("cape")(torch.randn(9, 3), q)
    with pytest.raises(BadInputError, match="0 or 1"):
        cape_targets(CAPE_P, CAPE_Y * 2)
    with pytest.raises(BadParameterError):
        cape_targets(CAPE_P, CAPE_Y, method="spline")


# ------------------------------------------------------------------------------ symmetric-ce
def test_symmetric_ce_spec_values():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype=F64)
    t = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0]], dtype=F64)
    per = loss("symmetric-ce", reduction="none")(s, t)
    torch.testing.assert_close(per, torch.tensor([1.1922878484, 1.2417574406], dtype=F64))
    assert float(loss("symmetric-ce")(s, t)) == pytest.approx(1.2170226445, abs=1e-10)


def test_symmetric_ce_oracle_gradient_through_both_terms_and_mask():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(3, 4, 6, generator=g, dtype=F64, requires_grad=True)
    t = torch.randn(3, 4, 6, generator=g, dtype=F64)
    mask = torch.rand(3, 4, generator=g) > 0.3
    alpha, temp = 0.3, 2.0
    p, q = torch.softmax(s / temp, -1), torch.softmax(t / temp, -1)
    naive = -(1 - alpha) * (q * p.log()).sum(-1) - alpha * (p * q.log()).sum(-1)
    want = naive[mask].mean()
    got = loss("symmetric-ce", alpha=alpha, temperature=temp)(s, t, mask)
    torch.testing.assert_close(got, want)
    (g_got,) = torch.autograd.grad(got, s)
    (g_want,) = torch.autograd.grad(want, s)
    torch.testing.assert_close(g_got, g_want)
    small = s[:1, :2].detach().clone().requires_grad_(True)
    sce = loss("symmetric-ce", alpha=alpha)
    assert torch.autograd.gradcheck(lambda v: sce(v, t[:1, :2]), (small,))
    with pytest.raises(BadInputError, match="teacher_logits"):
        sce(s, t[..., :3])
    with pytest.raises(BadParameterError):
        loss("symmetric-ce", alpha=1.5)


# ------------------------------------------------------------------------------ binary-kd
def test_binary_kd_closed_forms_and_peer():
    f = loss("binary-kd", reduction="none")
    got = f(torch.tensor([0.0, 1.0], dtype=F64), teacher_probs=torch.tensor([0.5, 0.7], dtype=F64))
    torch.testing.assert_close(got, torch.tensor([math.log(2), 0.6132616875], dtype=F64))
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, 7, generator=g, dtype=F64)
    t_logits = torch.randn(5, 7, generator=g, dtype=F64)
    want = torch.nn.functional.binary_cross_entropy_with_logits(s / 2, torch.sigmoid(t_logits / 2))
    got = loss("binary-kd", temperature=2.0)(s, teacher_logits=t_logits)
    torch.testing.assert_close(got, want)


def test_binary_kd_kl_floor_mask_gradcheck_and_errors():
    t = torch.tensor([0.2, 0.7, 0.95], dtype=F64)
    s = torch.logit(t)
    kl = loss("binary-kd", subtract_target_entropy=True, reduction="none")(s, teacher_probs=t)
    torch.testing.assert_close(kl, torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)
    mask = torch.tensor([True, False, True])
    x = torch.randn(3, dtype=F64, requires_grad=True)
    bkd = loss("binary-kd")
    v = x.detach()
    assert float(bkd(v, teacher_probs=t, mask=mask)) == pytest.approx(
        float(loss("binary-kd")(v[mask], teacher_probs=t[mask]))
    )
    assert torch.autograd.gradcheck(lambda v: bkd(v, teacher_probs=t), (x,))
    with pytest.raises(BadInputError, match="exactly one"):
        bkd(x)
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        bkd(x, teacher_probs=t + 1)


# ------------------------------------------------------------------------------ nt-xent
A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
B = torch.tensor([[1.0, 0.1], [0.2, 1.0], [0.9, 1.2]], dtype=F64)


def nt_xent_oracle(a, b, tau):
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1).tolist()
    n = len(a)
    total = []
    for i in range(2 * n):
        sims = [sum(x * y for x, y in zip(z[i], z[j])) / tau for j in range(2 * n)]
        pos = i + n if i < n else i - n
        lse = math.log(sum(math.exp(v) for j, v in enumerate(sims) if j != i))
        total.append(lse - sims[pos])
    return total


@pytest.mark.parametrize("tau, want", [(0.5, 1.0648000672), (0.1, 0.2991537239)])
def test_nt_xent_spec_values(tau, want):
    assert float(loss("nt-xent", temperature=tau)(A, B)) == pytest.approx(want, abs=1e-10)


def test_nt_xent_oracle_gradcheck_and_local_gather():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(7, 5, generator=g, dtype=F64)
    b = a + 0.3 * torch.randn(7, 5, generator=g, dtype=F64)
    per = loss("nt-xent", temperature=0.2, reduction="none")(a, b)
    torch.testing.assert_close(per, torch.tensor(nt_xent_oracle(a, b, 0.2), dtype=F64))
    # without a process group, gathering is the local loss
    assert float(loss("nt-xent", gather_distributed=True)(a, b)) == pytest.approx(
        float(loss("nt-xent")(a, b))
    )
    x = a[:3].clone().requires_grad_(True)
    nt = loss("nt-xent", temperature=0.3)
    assert torch.autograd.gradcheck(lambda v: nt(v, b[:3]), (x,))
    with pytest.raises(BadInputError, match="same shape"):
        nt(a, b[:4])


@pytest.mark.opt_in  # lightly is outside the dev extra (it pulls torchvision): install it, then
# run with python -m pytest -m opt_in
def test_nt_xent_matches_lightly_if_installed():
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(9, 4, generator=g), torch.randn(9, 4, generator=g)
    want = lightly_loss.NTXentLoss(temperature=0.5)(a, b)
    assert float(loss("nt-xent")(a, b)) == pytest.approx(float(want), rel=1e-5)
