"""Spectral estimators: rankme, erank, matrix-entropy, alpha-req, matrix-nuclear-norm, vendi."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from est_helpers import (
    data_with_covariance_spectrum,
    matrix_with_singular_values,
    random_rotation,
    signed_axis_points,
)

import xent_core
from xent_core import BadInputError, BadParameterError


def est(name, **params):
    return xent_core.estimator(name, **params)


# ------------------------------------------------------------------ matrix entropy and erank
def test_matrix_entropy_and_erank_on_a_constructed_spectrum():
    rng = np.random.default_rng(11)
    w = [0.4, 0.3, 0.2, 0.1]
    x = signed_axis_points(w, 1000, rng)
    h = -sum(p * math.log(p) for p in w)
    assert est("matrix-entropy")(x) == pytest.approx(h, abs=1e-12)
    assert est("matrix-entropy", base=2)(x) == pytest.approx(h / math.log(2), abs=1e-12)
    assert est("erank")(x) == pytest.approx(math.exp(h), abs=1e-10)
    _value, details = est("matrix-entropy")(x, details=True)
    np.testing.assert_allclose(details["eigenvalues"][:4], sorted(w, reverse=True), atol=1e-12)


def test_erank_equals_exp_matrix_entropy_on_random_data():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(57, 13)) @ rng.normal(size=(13, 13))
    assert est("erank")(x) == pytest.approx(math.exp(est("matrix-entropy")(x)), rel=1e-12)


def test_matrix_entropy_matches_float64_reference_and_bounds():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(41, 9)) * rng.uniform(0.1, 3, size=9)
    z = x - x.mean(0)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(z.T @ z / len(z))
    lam = np.clip(lam, 0, None) / lam.clip(0).sum()
    ref = -np.sum(lam[lam > 0] * np.log(lam[lam > 0]))
    assert est("matrix-entropy")(x) == pytest.approx(ref, rel=1e-12)
    assert 0 < ref <= math.log(9)
    # one direction only -> 0; isotropic axis points -> log d
    line = np.outer(rng.choice([-1.0, 1.0], size=20), rng.normal(size=5))
    assert est("matrix-entropy")(line) == pytest.approx(0.0, abs=1e-10)
    iso = signed_axis_points([0.2] * 5, 100, rng)
    assert est("matrix-entropy")(iso) == pytest.approx(math.log(5), abs=1e-12)
    assert est("erank")(iso) == pytest.approx(5.0, abs=1e-10)


def test_erank_without_preprocessing_is_roy_vetterli_of_squared_singular_values():
    rng = np.random.default_rng(14)
    s = np.array([3.0, 2.0, 1.0, 0.5])
    x = matrix_with_singular_values(s, 30, 7, rng)
    p = s**2 / (s**2).sum()
    ref = math.exp(-(p * np.log(p)).sum())
    got = est("erank", center=False, normalize_rows=False)(x)
    assert got == pytest.approx(ref, rel=1e-10)


# ------------------------------------------------------------------ rankme
def test_rankme_equal_singular_values_give_their_count():
    rng = np.random.default_rng(21)
    x = matrix_with_singular_values(np.array([2.0] * 5), 40, 12, rng)
    assert est("rankme", eps=0.0)(x) == pytest.approx(5.0, rel=1e-10)
    assert est("rankme")(x) == pytest.approx(5.0, rel=1e-4)  # eps = 1e-7 per component


def test_rankme_matches_float64_reference_and_differs_from_erank():
    rng = np.random.default_rng(22)
    s = np.array([5.0, 2.0, 1.0, 0.25, 0.1])
    x = matrix_with_singular_values(s, 33, 9, rng)
    p = s / s.sum() + 1e-7
    ref = math.exp(-(p * np.log(p)).sum() - 4 * 1e-7 * math.log(1e-7))  # 4 zero singular values
    value, details = est("rankme")(x, details=True)
    assert value == pytest.approx(ref, rel=1e-9)
    np.testing.assert_allclose(details["singular_values"][:5], s, rtol=1e-10)
    erank_raw = est("erank", center=False, normalize_rows=False)(x)
    assert abs(erank_raw - value) > 0.3  # squared vs plain singular values: not the same number


def test_rankme_accepts_torch_and_float32():
    rng = np.random.default_rng(23)
    x = rng.normal(size=(25, 6))
    a = est("rankme")(x)
    b = est("rankme")(torch.from_numpy(x).float())
    assert isinstance(b, float)
    assert b == pytest.approx(a, rel=1e-6)


# ------------------------------------------------------------------ alpha-req
def test_alpha_req_recovers_an_exact_power_law():
    rng = np.random.default_rng(31)
    ranks = np.arange(1, 17)
    for alpha in (0.7, 1.0, 1.8):
        x = data_with_covariance_spectrum(3.0 * ranks**-alpha, 200, rng)
        value, details = est("alpha-req")(x, details=True)
        assert value == pytest.approx(alpha, abs=1e-9)
        assert details["r2"] == pytest.approx(1.0, abs=1e-12)
        assert details["scale"] == pytest.approx(3.0, rel=1e-9)


def test_alpha_req_fit_range_and_weighting():
    rng = np.random.default_rng(32)
    ranks = np.arange(1, 31)
    lam = np.where(ranks <= 12, ranks**-1.5, 12.0**-1.5 * (ranks / 12.0) ** -0.2)
    x = data_with_covariance_spectrum(lam, 300, rng)
    head = est("alpha-req", max_rank=12)(x)
    assert head == pytest.approx(1.5, abs=1e-9)
    tail = est("alpha-req", min_rank=12)(x)
    assert tail == pytest.approx(0.2, abs=1e-9)
    # whole range: compare each weighting with numpy's weighted polyfit
    for weighting, w in (("log-rank", 1.0 / ranks), ("uniform", np.ones_like(lam))):
        slope, _ = np.polyfit(np.log(ranks), np.log(lam), 1, w=np.sqrt(w))
        value, details = est("alpha-req", weighting=weighting)(x, details=True)
        assert value == pytest.approx(-slope, rel=1e-9)
        assert 0.5 < details["r2"] < 1.0
    assert est("alpha-req", weighting="log-rank")(x) != pytest.approx(
        est("alpha-req", weighting="uniform")(x), rel=1e-3
    )


def test_alpha_req_bad_parameters():
    with pytest.raises(BadParameterError, match="max_rank"):
        est("alpha-req", min_rank=5, max_rank=3)
    with pytest.raises(BadParameterError, match="weighting"):
        est("alpha-req", weighting="cubic")
    x = np.random.default_rng(0).normal(size=(10, 1))
    with pytest.raises(BadInputError, match="positive eigenvalue"):
        est("alpha-req")(x)


# ------------------------------------------------------------------ matrix nuclear norm
def test_matrix_nuclear_norm_l12_is_exact_for_orthogonal_columns():
    rng = np.random.default_rng(41)
    # rows +-e_i: orthogonal columns, so the column norms are the singular values
    e = np.repeat(np.eye(3), [50, 30, 20], axis=0) * rng.choice([-1.0, 1.0], size=(100, 1))
    exact = (math.sqrt(50) + math.sqrt(30) + math.sqrt(20)) / 100
    assert est("matrix-nuclear-norm")(e) == pytest.approx(exact, rel=1e-12)
    assert est("matrix-nuclear-norm", approximation="exact")(e) == pytest.approx(exact, rel=1e-12)
    # rotating the feature axes keeps the nuclear norm, not its L_{1,2} approximation
    rotated = e @ random_rotation(3, rng)
    assert est("matrix-nuclear-norm", approximation="exact")(rotated) == pytest.approx(exact)
    assert abs(est("matrix-nuclear-norm")(rotated) - exact) > 1e-3


def test_matrix_nuclear_norm_matches_reference_formula():
    rng = np.random.default_rng(42)
    for n, d in ((37, 11), (5, 19)):
        a = rng.normal(size=(n, d))
        u = a / np.linalg.norm(a, axis=1, keepdims=True)
        col = np.sort(np.linalg.norm(u, axis=0))[::-1][: min(n, d)]
        assert est("matrix-nuclear-norm")(a) == pytest.approx(col.sum() / n, rel=1e-12)
        s = np.linalg.svd(u, compute_uv=False)
        got = est("matrix-nuclear-norm", approximation="exact", per_token=False)(a)
        assert got == pytest.approx(s.sum(), rel=1e-12)


# ------------------------------------------------------------------ vendi
def _vendi_ref(k: np.ndarray, q: float) -> float:
    lam = np.clip(np.linalg.eigvalsh(k / len(k)), 0, None)
    lam = lam / lam.sum()
    if q == 1:
        nz = lam[lam > 0]
        return math.exp(-(nz * np.log(nz)).sum())
    if math.isinf(q):
        return 1 / lam.max()
    nz = lam[lam > 1e-12 * lam.max()]
    return math.exp(math.log((nz**q).sum()) / (1 - q))


def test_vendi_paper_examples():
    x = np.array([0, 0, 10, 10, 20, 20], dtype=float)
    k = np.exp(-np.abs(x[:, None] - x[None, :]))
    assert est("vendi", input="kernel")(k) == pytest.approx(2.9999, abs=1e-4)
    k3 = np.array([[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]])
    assert est("vendi", input="kernel")(k3) == pytest.approx(2.1573, abs=1e-4)


def test_vendi_identity_and_all_ones():
    for n in (1, 7, 30):
        assert est("vendi", input="kernel")(np.eye(n)) == pytest.approx(n, rel=1e-12)
        assert est("vendi", input="kernel")(np.ones((n, n))) == pytest.approx(1.0, rel=1e-12)
        for q in (0.0, 0.5, 2.0, math.inf):
            assert est("vendi", input="kernel", q=q)(np.eye(n)) == pytest.approx(n, rel=1e-9)


def test_vendi_order_q_is_honoured():
    rng = np.random.default_rng(51)
    z = rng.normal(size=(23, 5))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    k = z @ z.T
    values = []
    for q in (0.0, 0.5, 1.0, 2.0, 3.5, math.inf):
        got = est("vendi", input="kernel", q=q)(k)
        assert got == pytest.approx(_vendi_ref(k, q), rel=1e-10), q
        emb = est("vendi", q=q)(z)
        assert emb == pytest.approx(got, rel=1e-9), q
        values.append(got)
    assert all(a > b for a, b in itertools.pairwise(values))  # strictly decreasing in q here
    assert values[0] == pytest.approx(5.0)  # q = 0: the rank
    assert est("vendi", q="inf")(z) == pytest.approx(values[-1])


def test_vendi_dual_equals_gram_path():
    rng = np.random.default_rng(52)
    z = rng.normal(size=(211, 17)) + 0.3
    dual, d1 = est("vendi", method="dual")(z, details=True)
    gram, d2 = est("vendi", method="gram")(z, details=True)
    assert d1["path"].startswith("dual") and d2["path"].startswith("gram")
    assert dual == pytest.approx(gram, rel=1e-10)
    _, auto = est("vendi")(z, details=True)
    assert auto["path"].startswith("dual")
    wide = rng.normal(size=(9, 40))
    _, auto = est("vendi")(wide, details=True)
    assert auto["path"].startswith("gram")


def test_vendi_bad_kernels():
    v = est("vendi", input="kernel")
    with pytest.raises(BadInputError, match="square"):
        v(np.ones((3, 4)))
    with pytest.raises(BadInputError, match="symmetric"):
        v(np.array([[1.0, 0.2], [0.3, 1.0]]))
    with pytest.raises(BadInputError, match="unit diagonal"):
        v(2 * np.eye(3))
    with pytest.raises(BadParameterError, match="q"):
        est("vendi", q=-1)
    with pytest.raises(BadInputError, match="zero"):
        est("vendi")(np.zeros((4, 3)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_vendi_against_the_vendi_score_package():
    vendi = pytest.importorskip("vendi_score.vendi", reason="vendi-score not installed (test-only)")
    rng = np.random.default_rng(53)
    z = rng.normal(size=(60, 8))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    k = zn @ zn.T
    for q in (0.5, 1, 2):
        ours = est("vendi", q=q)(z)
        assert ours == pytest.approx(float(vendi.score_dual(z, q=q)), rel=1e-9)
        # the peer's n x n path keeps round-off eigenvalues (~1e-17) of the rank-8 kernel; for
        # q < 1 their p^q adds ~1e-8 relative, so compare it a little more loosely
        assert ours == pytest.approx(float(vendi.score_K(k, q=q)), rel=1e-6)
    assert est("vendi", q=math.inf)(z) == pytest.approx(float(vendi.score_K(k, q="inf")), rel=1e-9)
    samples = [0, 0, 10, 10, 20, 20]
    ref = vendi.score(samples, lambda a, b: math.exp(-abs(a - b)))
    kk = np.exp(-np.abs(np.subtract.outer(samples, samples)).astype(float))
    assert est("vendi", input="kernel")(kk) == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------- vendi, large q
@pytest.mark.parametrize("q", [50.0, 500.0, 1e6])
def test_vendi_large_order_does_not_underflow(q: float) -> None:
    # eigenvalues 0.5, 0.25, 0.25: sum l^q underflows to 0 in float64 for large q, but
    # VS_q = exp(log(sum l^q) / (1 - q)) is finite and tends to 1 / max l = 2 as q -> inf.
    k = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1.0]])
    lam = np.array([0.5, 0.25, 0.25])
    log_sum = np.logaddexp.reduce(q * np.log(lam))
    expected = math.exp(log_sum / (1.0 - q))
    got = xent_core.estimator("vendi", q=q, input="kernel")(k)
    assert got == pytest.approx(expected, rel=1e-9)
    assert 2.0 <= got <= xent_core.estimator("vendi", q=2, input="kernel")(k)


def test_vendi_large_order_approaches_infinity_order_on_embeddings() -> None:
    x = np.random.default_rng(3).standard_normal((40, 6))
    v_big = xent_core.estimator("vendi", q=1e6)(x)
    v_inf = xent_core.estimator("vendi", q="inf")(x)
    assert v_big == pytest.approx(v_inf, rel=1e-4)
