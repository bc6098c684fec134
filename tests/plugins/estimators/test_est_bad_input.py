"""Estimators on hostile input: huge magnitudes, bf16, ragged lists, wrongly typed parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators.vendi import EIGENVALUE_CUTOFF, renyi_entropy

import xent_core
from xent_core import BadInputError, BadParameterError

X = np.random.default_rng(11).normal(size=(37, 5))
SCALE = 1e200  # squares overflow float64: every Gram matrix, norm and distance must avoid them


@pytest.mark.parametrize(
    "name",
    ["alpha-req", "rankme", "erank", "matrix-entropy", "vendi", "matrix-nuclear-norm"],
)
def test_scale_invariant_estimators_on_huge_data(name):
    est = xent_core.estimator(name)
    assert est(X * SCALE) == pytest.approx(est(X), rel=1e-9, abs=1e-12)


def test_dse_on_huge_data_is_the_well_separated_limit():
    # at 1e200 every pair is far apart for sigma=10: P = I, DSE = log2(n) exactly
    assert xent_core.estimator("dse")(X * SCALE) == pytest.approx(math.log2(len(X)), rel=1e-12)


@pytest.mark.parametrize("name", ["knn-entropy", "gaussian-entropy"])
def test_differential_entropies_shift_by_d_log_scale(name):
    # h(aX) = h(X) + d log a: a closed form, checked where a naive computation overflows
    est = xent_core.estimator(name)
    want = est(X) + X.shape[1] * math.log(SCALE)
    assert est(X * SCALE) == pytest.approx(want, rel=1e-12)
    assert math.isfinite(est(X * 1e-200))


def test_alpha_req_intercept_is_shifted_back():
    _, small = xent_core.estimator("alpha-req")(X, details=True)
    _, big = xent_core.estimator("alpha-req")(X * 1e100, details=True)
    assert big["intercept"] == pytest.approx(small["intercept"] + 2 * math.log(1e100), rel=1e-12)


@pytest.mark.parametrize("name", ["plugin-entropy", "miller-madow", "chao-shen"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_discrete_entropies_on_half_precision_tensors(name, dtype):
    labels = torch.randint(0, 6, (80,), generator=torch.Generator().manual_seed(2))
    est = xent_core.estimator(name)
    assert est(labels.to(dtype)) == pytest.approx(est(labels.numpy()), rel=1e-12)


@pytest.mark.parametrize("name", ["knn-entropy", "ksg-mi", "plugin-entropy", "dse", "dsmi"])
def test_ragged_lists_are_bad_input(name):
    ragged = [[1.0, 2.0], [3.0], [4.0, 5.0]]
    args = (ragged, [0, 1, 0]) if name in ("ksg-mi", "dsmi") else (ragged,)
    with pytest.raises(BadInputError):
        xent_core.estimator(name)(*args)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("dse", {"seed": "x"}),
        ("dse", {"sigma": "3"}),
        ("dse", {"max_samples": 2.5}),
        ("dsmi", {"seed": None}),
        ("rankme", {"eps": "x"}),
        ("token-entropy", {"logit_scale": None}),
        ("token-entropy", {"logit_scale": 0}),
        ("token-entropy", {"softcap": "3"}),
        ("token-entropy", {"chunk_elements": "x"}),
        ("knn-entropy", {"base": None}),
        ("knn-entropy", {"k": 2.5}),
        ("vendi", {"q": [1]}),
        ("vendi", {"normalize": "no"}),
        ("erank", {"center": "false"}),
        ("alpha-req", {"weighting": 1}),
    ],
)
def test_wrongly_typed_parameters_are_bad_parameters(name, params):
    with pytest.raises(BadParameterError):
        xent_core.estimator(name, **params)


def test_integral_floats_still_count_as_integers():
    assert xent_core.estimator("knn-entropy", k=3.0).k == 3  # as a CLI or config writes them


def test_vendi_cutoff_decides_low_orders_only():
    p = torch.tensor([0.6, 0.4 - 1e-14, 1e-14], dtype=torch.float64)  # last one under the cut-off
    assert 1e-14 / 0.6 < EIGENVALUE_CUTOFF
    assert renyi_entropy(p, 0.0) == pytest.approx(math.log(2))  # VS_0 = 2, not 3
    q = 0.5
    with_all = math.log(float((p**q).sum())) / (1 - q)
    kept = math.log(float((p[:2] ** q).sum())) / (1 - q)
    assert renyi_entropy(p, q) == pytest.approx(kept, rel=1e-12) and kept != with_all
    assert renyi_entropy(p, 1.0) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-12)
