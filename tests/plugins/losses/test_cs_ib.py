"""cs-ib: the CS information bottleneck objective against plain float64 loops (both
denominators, the official code's settings), its gradients, torch.compile and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import xent_core


def _k(u, v, s: float) -> float:
    return math.exp(-sum((a - b) ** 2 for a, b in zip(u, v, strict=True)) / (2 * s * s))


def _loop_qmi(x, y, s: float) -> float:
    n = len(x)
    kx = [[_k(x[i], x[j], s) for j in range(n)] for i in range(n)]
    ky = [[_k(y[i], y[j], s) for j in range(n)] for i in range(n)]
    joint = math.fsum(kx[i][j] * ky[i][j] for i in range(n) for j in range(n)) / n**2
    marg = math.fsum(map(math.fsum, kx)) * math.fsum(map(math.fsum, ky)) / n**4
    cross = math.fsum(kx[i][j] * ky[i][k] for i in range(n) for j in range(n) for k in range(n))
    return math.log(joint * marg) - 2 * math.log(cross / n**3)


def _loop_loss(x, z, y_hat, y, *, sigma, beta, denominator, normalized=True, base=math.e):
    """The objective written out with loops over rows j (outer) and i (inner), in float64."""
    n = len(x)
    kk = [[_k(x[j], x[i], sigma) for i in range(n)] for j in range(n)]
    if denominator == "squared-sum":
        d = [math.fsum(row) ** 2 for row in kk]
    else:  # the official code: sum_i K_ji^2
        d = [math.fsum(v * v for v in row) for row in kk]

    def term(a, b):  # sum_j (sum_i K_ji kappa(a_j - b_i)) / d_j
        return math.fsum(
            math.fsum(kk[j][i] * _k(a[j], b[i], sigma) for i in range(n)) / d[j] for j in range(n)
        )

    cond = math.log(term(y, y)) + math.log(term(y_hat, y_hat)) - 2 * math.log(term(y_hat, y))
    qmi = _loop_qmi(x, z, sigma)
    if normalized:
        qmi /= math.sqrt(_loop_qmi(x, x, sigma) * _loop_qmi(z, z, sigma))
    else:
        qmi /= math.log(base)
    return cond / math.log(base) + beta * qmi


def _batch(n: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    z = torch.tanh(x @ torch.randn(3, 4, generator=g, dtype=torch.float64))
    y = x[:, :1] ** 2 + 0.3 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    y_hat = y + 0.5 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return x, z, y_hat.squeeze(1), y.squeeze(1)


def _rows(t: torch.Tensor) -> list[list[float]]:
    return t.reshape(t.shape[0], -1).tolist()


@pytest.mark.parametrize(
    "params",
    [
        {"sigma": 1.0, "beta": 0.01, "denominator": "squared-sum"},
        {"sigma": 0.7, "beta": 0.3, "denominator": "squared-sum", "normalized": False},
        # the official CS_IB_Housing.py setting: sigma 1, beta 0.01, sum_i K_ji^2, log2
        {"sigma": 1.0, "beta": 0.01, "denominator": "sum-of-squares", "base": 2.0},
        {
            "sigma": 1.6,
            "beta": 1.0,
            "denominator": "sum-of-squares",
            "normalized": False,
            "base": 2.0,
        },
    ],
)
def test_equals_float64_loops(params):
    x, z, y_hat, y = _batch()
    loss = xent_core.loss("cs-ib", **params)
    ref = _loop_loss(*(_rows(t) for t in (x, z, y_hat, y)), **params)
    assert float(loss(x, z, y_hat, y)) == pytest.approx(ref, abs=1e-12)


def test_perfect_predictions_leave_only_the_compression_term():
    x, z, _, y = _batch(11, seed=1)
    qmi = xent_core.estimator("cs-qmi", sigma=1.0, normalized=True)(x, z)
    for den in ("squared-sum", "sum-of-squares"):
        loss = xent_core.loss("cs-ib", beta=0.5, denominator=den)
        assert float(loss(x, z, y, y)) == pytest.approx(0.5 * qmi, abs=1e-12)
    assert float(xent_core.loss("cs-ib", beta=0.0)(x, z, y, y)) == pytest.approx(0.0, abs=1e-12)


def test_median_bandwidth_is_per_variable():
    x, z, y_hat, y = _batch(8, seed=2)
    from xent_estimators.cauchy_schwarz import conditional_cs_divergence, median_bandwidth

    sx, sy = median_bandwidth(x), median_bandwidth(torch.cat([y, y_hat])[:, None])
    cond = conditional_cs_divergence(x, y[:, None], y_hat[:, None], sx, sy)
    qmi = xent_core.estimator("cs-qmi", sigma="median", normalized=True)(x, z)
    got = xent_core.loss("cs-ib", sigma="median", beta=0.2)(x, z, y_hat, y)
    assert float(got) == pytest.approx(float(cond) + 0.2 * qmi, abs=1e-12)


def test_gradients():
    x, z, y_hat, y = _batch(6, seed=3)
    loss = xent_core.loss("cs-ib", beta=0.2, sigma=0.9)
    z.requires_grad_(True)
    y_hat.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: loss(x, a, b, y), (z, y_hat))
    code = xent_core.loss("cs-ib", beta=0.2, denominator="sum-of-squares")
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: code(a, b, c, y), (x, z, y_hat))


def test_float32_inputs_follow_float64():
    x, z, y_hat, y = _batch(13, seed=4)
    loss = xent_core.loss("cs-ib", beta=0.1)
    out = loss(*(t.float() for t in (x, z, y_hat, y)))
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(float(loss(x, z, y_hat, y)), rel=1e-4, abs=1e-5)


def test_compiles_as_one_graph_with_checks_off():
    x, z, y_hat, y = _batch(7, seed=5)
    loss = xent_core.loss("cs-ib", beta=0.1)
    expected = loss(x, z, y_hat, y)
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    with xent_core.input_checks(False):
        got = compiled(x, z, y_hat, y)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_bad_inputs_and_parameters():
    x, z, y_hat, y = _batch(6, seed=6)
    loss = xent_core.loss("cs-ib")
    with pytest.raises(xent_core.BadInputError, match="paired"):
        loss(x, z[:5], y_hat, y)
    with pytest.raises(xent_core.BadInputError, match="same shape"):
        loss(x, z, y_hat[:, None].repeat(1, 2), y)
    with pytest.raises(xent_core.BadInputError, match="floating"):
        loss(x, z, y_hat, y.long())
    bad = z.clone()
    bad[2, 1] = math.nan
    with pytest.raises(xent_core.BadInputError, match="NaN"):
        loss(x, bad, y_hat, y)
    with pytest.raises(xent_core.BadInputError, match="at least 2"):
        loss(x[:1], z[:1], y_hat[:1], y[:1])
    with pytest.raises(xent_core.BadInputError, match=r"O\(n\^2\) memory"):
        xent_core.loss("cs-ib", max_batch=5)(x, z, y_hat, y)
    for kw in ({"reduction": "sum"}, {"beta": -1.0}, {"sigma": 0.0}, {"denominator": "x"},
               {"normalized": 1}, {"base": 1.0}, {"max_batch": 1}):  # fmt: skip
        with pytest.raises(xent_core.BadParameterError):
            xent_core.loss("cs-ib", **kw)


def test_defaults_follow_the_official_code():
    # CS_IB_Housing.py: beta = 0.01, sigma = 1, normalised CS-QMI for the compression term
    loss = xent_core.loss("cs-ib")
    assert (loss.beta, loss.sigma, loss.normalized) == (0.01, 1.0, True)
