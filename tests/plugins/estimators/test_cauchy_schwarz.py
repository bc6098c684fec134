"""cs-divergence and cs-qmi against the spec's computed values, numerical integration of the
KDEs, an independent float64 double loop, and the Gaussian closed form on large samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.spatial.distance import cdist, pdist
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm
from xent_estimators import cauchy_schwarz as cs
from xent_estimators import cs_divergence_gaussian

import xent_core


def _div(**kw):
    return xent_core.estimator("cs-divergence", **kw)


def _qmi(**kw):
    return xent_core.estimator("cs-qmi", **kw)


def _k(u: np.ndarray, v: np.ndarray, sigma: float) -> float:
    return math.exp(-float(np.sum((u - v) ** 2)) / (2 * sigma * sigma))


def _loop_div(x: np.ndarray, y: np.ndarray, s: float) -> float:
    """D_CS by plain float64 double loops over the rows."""
    pq = math.fsum(_k(a, b, s) for a in x for b in y) / (len(x) * len(y))
    pp = math.fsum(_k(a, b, s) for a in x for b in x) / len(x) ** 2
    qq = math.fsum(_k(a, b, s) for a in y for b in y) / len(y) ** 2
    return -2 * math.log(pq) + math.log(pp) + math.log(qq)


def _loop_qmi(x: np.ndarray, y: np.ndarray, sx: float, sy: float) -> float:
    """I_CS by double (and triple) loops over the rows."""
    n = len(x)
    kx = [[_k(x[i], x[j], sx) for j in range(n)] for i in range(n)]
    ky = [[_k(y[i], y[j], sy) for j in range(n)] for i in range(n)]
    joint = math.fsum(kx[i][j] * ky[i][j] for i in range(n) for j in range(n)) / n**2
    marg = math.fsum(map(math.fsum, kx)) * math.fsum(map(math.fsum, ky)) / n**4
    cross = math.fsum(kx[i][j] * ky[i][k] for i in range(n) for j in range(n) for k in range(n))
    return math.log(joint * marg) - 2 * math.log(cross / n**3)


# ----------------------------------------------------------------------------- spec values
def test_spec_kde_value_equals_integrating_the_two_kdes():
    x, y = np.array([-1.0, 0.0, 0.5]), np.array([1.0, 2.0, 0.0, 3.0])
    value = _div(sigma=1.0)(x, y)
    assert value == pytest.approx(0.9263030934, abs=1e-10)
    # the two Gaussian-mixture KDEs with bandwidth sigma / sqrt(2), integrated numerically
    h = 1 / math.sqrt(2)

    def p(t):
        return norm.pdf(t, x, h).mean()

    def q(t):
        return norm.pdf(t, y, h).mean()

    def quad(f):
        return integrate.quad(f, -15, 20, epsabs=1e-14, epsrel=1e-12, limit=400)[0]

    d = -2 * math.log(quad(lambda t: p(t) * q(t)))
    d += math.log(quad(lambda t: p(t) ** 2)) + math.log(quad(lambda t: q(t) ** 2))
    assert value == pytest.approx(d, abs=1e-12)
    assert _div(sigma=1.0, base=2)(x, y) == pytest.approx(value / math.log(2), rel=1e-14)


def test_spec_gaussian_closed_form_and_integration():
    assert cs_divergence_gaussian(0.0, 1.0, 1.0, 2.0) == pytest.approx(0.3922248512, abs=1e-10)

    def quad(f):
        return integrate.quad(f, -30, 30, epsabs=1e-15, limit=400)[0]

    p, q = norm(0, 1).pdf, norm(1, math.sqrt(2)).pdf
    d = -2 * math.log(quad(lambda t: p(t) * q(t)))
    d += math.log(quad(lambda t: p(t) ** 2)) + math.log(quad(lambda t: q(t) ** 2))
    assert cs_divergence_gaussian(0.0, 1.0, 1.0, 2.0) == pytest.approx(d, abs=1e-12)


def test_gaussian_closed_form_multivariate_matches_scipy_densities():
    m1, m2 = np.array([0.2, -1.0, 0.5]), np.array([1.0, 0.0, -0.3])
    a = np.random.default_rng(3).normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.5 * np.eye(3), np.diag([0.4, 1.3, 2.0])
    z = np.zeros(3)
    ref = -2 * multivariate_normal.logpdf(m1, m2, s1 + s2)
    ref += multivariate_normal.logpdf(z, z, 2 * s1) + multivariate_normal.logpdf(z, z, 2 * s2)
    assert cs_divergence_gaussian(m1, s1, m2, s2) == pytest.approx(ref, abs=1e-12)
    assert cs_divergence_gaussian(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(xent_core.BadInputError):
        cs_divergence_gaussian(m1, s1, m2[:2], s2)


def test_spec_qmi_value_bits_and_nats():
    x, y = np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.5, 1.8, 5.0])
    assert _qmi(sigma=1.0, base=2)(x, y) == pytest.approx(0.7072279629, abs=1e-10)
    assert _qmi(sigma=1.0)(x, y) == pytest.approx(0.4902130685, abs=1e-10)


# ----------------------------------------------------------------------------- exact checks
@pytest.mark.parametrize(
    ("n", "m", "d", "sigma"), [(7, 5, 1, 0.7), (9, 11, 3, 1.9), (1, 4, 2, 1.0)]
)
def test_divergence_equals_a_float64_double_loop(n, m, d, sigma):
    rng = np.random.default_rng(n * 100 + m)
    x, y = rng.normal(size=(n, d)), rng.normal(0.5, 1.3, size=(m, d))
    value, info = _div(sigma=sigma)(x, y, details=True)
    assert value == pytest.approx(_loop_div(x, y, sigma), abs=1e-12)
    assert info["sigma"] == sigma
    assert _div(sigma=sigma)(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        value, abs=1e-12
    )
    assert _div(sigma=sigma)(y, x) == pytest.approx(value, abs=1e-12)  # symmetric
    assert _div(sigma=sigma)(x, x) == pytest.approx(0.0, abs=1e-12)


def test_median_bandwidth_is_the_median_pairwise_distance_of_the_pooled_sample():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(13, 2)), rng.normal(1, 2, size=(8, 2))
    med = float(np.median(pdist(np.vstack([x, y]))))
    value, info = _div(sigma="median")(x, y, details=True)
    assert info["sigma"] == pytest.approx(med, rel=1e-14)
    assert value == pytest.approx(_loop_div(x, y, med), abs=1e-12)
    _, q = _qmi(sigma="median")(x, y[:, :1].repeat(13 // 8 + 1, 0)[:13], details=True)
    assert q["sigma_x"] == pytest.approx(float(np.median(pdist(x))), rel=1e-14)


@pytest.mark.parametrize(("n", "dx", "dy", "sx", "sy"), [(6, 1, 1, 1.0, 1.0), (9, 2, 3, 0.8, 1.7)])
def test_qmi_equals_float64_loops(n, dx, dy, sx, sy):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dx))
    y = (
        np.hstack([x[:, :1] ** 2, rng.normal(size=(n, dy - 1))])
        if dy > 1
        else x + rng.normal(size=(n, 1))
    )
    value = _qmi(sigma=sx, sigma_y=sy)(x, y)
    ref = _loop_qmi(x, y, sx, sy)
    assert value == pytest.approx(ref, abs=1e-12) and ref > 0
    ixx, iyy = _loop_qmi(x, x, sx, sx), _loop_qmi(y, y, sy, sy)
    normed = _qmi(sigma=sx, sigma_y=sy, normalized=True)(x, y)
    assert normed == pytest.approx(ref / math.sqrt(ixx * iyy), abs=1e-12)
    assert _qmi(sigma=sx, sigma_y=sy)(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        value, abs=1e-12
    )


def test_row_blocks_give_the_same_value(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(37, 3)), rng.normal(size=(29, 3))
    whole_d = _div(sigma=1.3)(x, y)
    whole_q = _qmi(sigma=0.9, normalized=True)(x, y[:, :2].repeat(2, 0)[:37])
    monkeypatch.setattr(cs, "BLOCK_ENTRIES", 50)  # blocks of one or two rows
    assert _div(sigma=1.3)(x, y) == pytest.approx(whole_d, abs=1e-12)
    assert _qmi(sigma=0.9, normalized=True)(x, y[:, :2].repeat(2, 0)[:37]) == pytest.approx(
        whole_q, abs=1e-12
    )


def test_far_apart_samples_stay_finite_in_the_log_domain():
    # exp(-100^2 / 2) underflows to 0; the log-domain sums give log int pq = -5000 exactly
    assert _div(sigma=1.0)([0.0], [100.0]) == pytest.approx(10000.0, rel=1e-14)
    x, y = np.array([0.0, 1.0, 2.5]), np.array([40.0, 41.5])

    def lme(d2):  # log mean exp(-d^2 / 2), by scipy
        return float(logsumexp(-d2 / 2) - math.log(d2.size))

    ref = -2 * lme((x[:, None] - y) ** 2) + lme((x[:, None] - x) ** 2) + lme((y[:, None] - y) ** 2)
    assert _div(sigma=1.0)(x, y) == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize(
    ("sigma", "shift", "n", "m"),
    [
        (1.0, 0.0, 37, 29),  # the plain domain throughout
        (0.002, 0.0, 37, 29),  # tiny bandwidth: cross sums underflow, the log domain takes over
        (1.0, 60.0, 37, 29),  # far-apart samples: log int pq ~ -1800
        (1.0, 0.0, 1, 1),  # single samples
        (0.7, 0.0, 12, 12),  # duplicates below
    ],
)
def test_plain_domain_sums_match_the_log_domain(monkeypatch, sigma, shift, n, m):
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.normal(size=(n, 3)))
    y = torch.from_numpy(rng.normal(size=(m, 3)) + shift)
    if n == 12:
        x[6:] = x[:6]
        y[4:8] = x[:4]
    # both domains form ||u - v||^2 as |u|^2 + |v|^2 - 2 u.v (in another order): they agree to the
    # cancellation error of that, eps * |u|^2 / sigma^2
    tol = 1e-12 + 1e-15 * float(torch.cat([x, y]).square().sum(1).max()) / sigma**2
    monkeypatch.setattr(cs, "BLOCK_ENTRIES", 160)  # several plain blocks of one or more rows
    for plain_blocks in (True, False):
        if not plain_blocks:
            monkeypatch.setattr(cs, "BLOCK_ENTRIES", 1 << 22)
        fast = cs.log_cs_terms(x, y, sigma, plain=True)
        slow = cs.log_cs_terms(x, y, sigma)
        for key in slow:
            assert float(fast[key]) == pytest.approx(float(slow[key]), rel=1e-13, abs=tol)
            assert math.isfinite(float(fast[key]))
        if n == m:
            fast = cs.cs_qmi_tensors(x, y, sigma, 1.3 * sigma, self_terms=True, plain=True)
            slow = cs.cs_qmi_tensors(x, y, sigma, 1.3 * sigma, self_terms=True)
            for key in slow:
                assert float(fast[key]) == pytest.approx(float(slow[key]), rel=1e-12, abs=tol)


def test_plain_domain_falls_back_only_near_underflow():
    a, b = torch.zeros(2, 1, dtype=torch.float64), torch.full((3, 1), 20.0, dtype=torch.float64)
    # exp(-400) = 1.9e-174 is exact in the plain domain; exp(-40000) underflows to 0
    assert float(cs.log_kernel_sum(a, b, plain=True)) == pytest.approx(math.log(6) - 400, rel=1e-15)
    assert float(cs.log_kernel_sum(a, 10 * b, plain=True)) == pytest.approx(
        math.log(6) - 40000, rel=1e-15
    )


def test_constant_variable_gives_zero_qmi_and_zero_normalised_qmi():
    x = np.random.default_rng(0).normal(size=(9, 2))
    assert _qmi()(x, np.ones(9)) == pytest.approx(0.0, abs=1e-13)
    assert _qmi(normalized=True)(x, np.ones(9)) == 0.0


def test_tensor_forms_are_differentiable_and_match():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64, generator=g, requires_grad=True)
    est = _div(sigma=0.9)
    assert float(est.tensor(x, y).detach()) == pytest.approx(est(x, y), abs=1e-13)
    assert torch.autograd.gradcheck(lambda a, b: est.tensor(a, b), (x, y))
    q = _qmi(sigma=0.8, normalized=True)
    z = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert float(q.tensor(x, z).detach()) == pytest.approx(q(x, z), abs=1e-13)
    assert torch.autograd.gradcheck(lambda a, b: q.tensor(a, b), (x, z))


# ----------------------------------------------------------------------------- Gaussian oracle
# Tolerance of the large-sample checks: the estimator is a smooth function of kernel means
# (V-statistics). Its error is (i) the sampling noise of the first-order (Hajek) projection,
# ``mean_i phi(z_i)``, whose standard error the test computes from the sample's own influence
# values ``phi``, plus (ii) the O(1/n) bias of the V-statistics (coincident indices, diagonal
# kernel = 1), estimated as |V - U| with U the same terms without coincident indices (unbiased).
# A 4-standard-error band is exceeded by chance with probability ~6e-5 (and the seeds are fixed).


def _gram(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))


def test_divergence_converges_to_the_gaussian_closed_form():
    rng = np.random.default_rng(20260)
    m1, m2 = np.array([0.0, 0.0]), np.array([2.0, -1.0])
    s1, s2 = np.array([[1.0, 0.3], [0.3, 0.5]]), np.array([[0.7, 0.0], [0.0, 1.2]])
    sigma, n, m = 2.0, 1800, 2100
    x, y = rng.multivariate_normal(m1, s1, n), rng.multivariate_normal(m2, s2, m)
    # oracle (scipy densities): the Parzen estimator targets D_CS of p, q smoothed by sigma^2/2
    h = sigma**2 / 2 * np.eye(2)
    z = np.zeros(2)
    oracle = -2 * multivariate_normal.logpdf(m1, m2, s1 + s2 + 2 * h)
    oracle += multivariate_normal.logpdf(z, z, 2 * (s1 + h))
    oracle += multivariate_normal.logpdf(z, z, 2 * (s2 + h))
    kxy, kxx, kyy = _gram(x, y, sigma), _gram(x, x, sigma), _gram(y, y, sigma)
    a_, b_, c_ = kxy.mean(), kxx.mean(), kyy.mean()
    phi_x = -2 * (kxy.mean(1) - a_) / a_ + 2 * (kxx.mean(1) - b_) / b_
    phi_y = -2 * (kxy.mean(0) - a_) / a_ + 2 * (kyy.mean(1) - c_) / c_
    se = math.sqrt(np.var(phi_x) / n + np.var(phi_y) / m)
    v_stat = -2 * math.log(a_) + math.log(b_) + math.log(c_)
    b_u, c_u = (kxx.sum() - n) / (n * (n - 1)), (kyy.sum() - m) / (m * (m - 1))
    u_stat = -2 * math.log(a_) + math.log(b_u) + math.log(c_u)
    tol = 4 * se + abs(v_stat - u_stat)
    value = _div(sigma=sigma)(x, y)
    assert value == pytest.approx(v_stat, abs=1e-10)
    assert abs(value - oracle) < tol, (value, oracle, tol)
    assert tol < 0.12 * oracle  # tight enough to tell sigma^2/2 from sigma^2 smoothing (-35%)


def test_qmi_converges_to_the_gaussian_closed_form():
    rng = np.random.default_rng(77)
    rho, s, n, sx, sy = 0.9, 1.5, 2000, 0.5, 0.75
    cov = np.array([[1.0, rho * s], [rho * s, s * s]])
    xy = rng.multivariate_normal([0.0, 0.0], cov, n)
    x, y = xy[:, :1], xy[:, 1:]
    joint = cov + np.diag([sx**2, sy**2]) / 2  # smoothed joint; the product of its marginals:
    prod = np.diag(np.diag(joint))
    z = np.zeros(2)
    oracle = -2 * multivariate_normal.logpdf(z, z, joint + prod)
    oracle += multivariate_normal.logpdf(z, z, 2 * joint)
    oracle += multivariate_normal.logpdf(z, z, 2 * prod)
    kx, ky = _gram(x, x, sx), _gram(y, y, sy)
    a_i, rx, ry = (kx * ky).mean(1), kx.mean(1), ky.mean(1)
    a_, b_, c_, d_ = a_i.mean(), rx.mean(), ry.mean(), (rx * ry).mean()
    # influence of the order-3 term mean_ijk Kx_ij Ky_ik: i in each of its three places
    phi_d = rx * ry + kx @ ry / n + ky @ rx / n - 3 * d_
    phi = 2 * (a_i - a_) / a_ + 2 * (rx - b_) / b_ + 2 * (ry - c_) / c_ - 2 * phi_d / d_
    se = float(np.std(phi)) / math.sqrt(n)
    v_stat = math.log(a_ * b_ * c_) - 2 * math.log(d_)
    pairs, triples = n * (n - 1), n * (n - 1) * (n - 2)
    sx_, sy_ = kx.sum(1) - 1, ky.sum(1) - 1  # row sums without the diagonal
    a_u, b_u, c_u = ((kx * ky).sum() - n) / pairs, sx_.sum() / pairs, sy_.sum() / pairs
    d_u = ((sx_ * sy_).sum() - ((kx * ky).sum() - n)) / triples
    u_stat = math.log(a_u * b_u * c_u) - 2 * math.log(d_u)
    tol = 4 * se + abs(v_stat - u_stat)
    value = _qmi(sigma=sx, sigma_y=sy)(x, y)
    assert value == pytest.approx(v_stat, abs=1e-10)
    assert abs(value - oracle) < tol, (value, oracle, tol)
    assert tol < 0.25 * oracle


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_and_parameters():
    x = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(xent_core.BadInputError, match="two samples"):
        _div()(x)
    with pytest.raises(xent_core.BadInputError, match="same number of features"):
        _div()(x, x[:, :1])
    with pytest.raises(xent_core.BadInputError, match="paired"):
        _qmi()(x, x[:5])
    with pytest.raises(xent_core.BadInputError, match="median"):
        _qmi(sigma="median")([1.0], [2.0])
    for bad in (0.0, -1.0, "mean", None, math.nan):
        with pytest.raises(xent_core.BadParameterError):
            _div(sigma=bad)
        with pytest.raises(xent_core.BadParameterError):
            _qmi(sigma_y=bad) if bad is not None else _qmi(sigma=bad)
    with pytest.raises(xent_core.BadParameterError):
        _qmi(normalized="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_match_cpu():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(301, 3)), rng.normal(0.3, 1.1, size=(257, 3))
    for est, b in ((_div(sigma="median"), y), (_qmi(sigma=0.7, normalized=True), x[:, :2] ** 2)):
        cpu = est(x, b)
        gpu = est(torch.from_numpy(x).cuda(), torch.from_numpy(b).cuda())
        assert gpu == pytest.approx(cpu, rel=1e-9, abs=1e-12)
