"""``dc-pdd`` against the spec's worked example and a plain-Python float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from xent_estimators.dc_pdd import reference_neg_log_freq

import xent_core
from xent_core import BadInputError, BadParameterError

# the spec's example: ids, target probabilities and counts over V = 10
IDS = [5, 3, 5, 7, 3, 9]
PROBS = np.array([0.5, 0.2, 0.9, 0.05, 0.6, 0.3])
COUNTS = np.zeros(10)
COUNTS[[3, 5, 7, 9]] = [100, 1000, 10, 1]


def est(**kw):
    return xent_core.estimator("dc-pdd", ref_counts=COUNTS, **kw)


def reference(logp, ids, counts, a, smoothing="laplace"):
    """beta by the definition, one token at a time in float64 (first occurrences by a set)."""
    v, total = len(counts), float(sum(counts))
    seen, alphas = set(), []
    for lp, i in zip(logp, ids):
        if i in seen:
            continue
        seen.add(i)
        if smoothing == "laplace":
            freq = (counts[i] + 1.0) / (total + v)
        else:
            freq = counts[i] / total
        surprise = math.inf if freq == 0 else math.log(1.0 / freq)
        alphas.append(min(math.exp(lp) * surprise, a))
    return sum(alphas) / len(alphas)


def test_smoothed_frequencies_of_the_spec():
    got = np.exp(-reference_neg_log_freq(COUNTS))[[5, 3, 7, 9]]
    exact = [1001 / 1121, 101 / 1121, 11 / 1121, 2 / 1121]  # (count + 1) / (1111 + 10)
    np.testing.assert_allclose(got, exact, rtol=1e-14)
    # the spec's digits are truncated, and its third value is off by 4.4e-9 (11/1121 =
    # 0.00981266726...); its alphas and betas agree with the exact fractions
    spec = [0.8929527207, 0.0900981266, 0.0098126717, 0.0017841213]
    np.testing.assert_allclose(got, spec, rtol=0, atol=5e-9)


@pytest.mark.parametrize(("a", "beta"), [(1.0, 0.4422965152), (10.0, 0.6669587083), (0.01, 0.01)])
def test_beta_of_the_spec(a, beta):
    value, info = est(a=a)(np.log(PROBS), IDS, details=True)
    assert value == pytest.approx(beta, abs=5e-11)
    assert info["first_occurrences"].tolist() == [4]  # positions 0, 1, 3, 5
    assert est(a=a, sign="nonmember-high")(np.log(PROBS), IDS) == pytest.approx(-beta, abs=5e-11)


def test_alpha_of_the_spec_through_no_clipping():
    # with a = inf, beta is the plain mean of the four alphas of the spec
    alphas = [0.0566108, 0.4813712, 0.2312041, 1.8986488]
    assert est(a=math.inf)(np.log(PROBS), IDS) == pytest.approx(np.mean(alphas), abs=1e-7)


def test_batched_documents_with_padding_match_the_reference():
    rng = np.random.default_rng(3)
    v, b, t = 23, 5, 17
    counts = rng.integers(0, 40, size=v).astype(float)
    counts[[2, 11]] = 0  # unseen tokens: Laplace keeps them finite
    ids = rng.integers(0, v, size=(b, t))
    logp = np.log(rng.uniform(0.01, 1.0, size=(b, t)))
    lengths = [17, 9, 1, 13, 16]
    mask = np.arange(t)[None, :] < np.array(lengths)[:, None]
    logp[~mask] = np.nan  # padding may hold anything
    ids[~mask] = -100
    e = xent_core.estimator("dc-pdd", ref_counts=torch.tensor(counts), a=0.9)
    value, info = e(torch.tensor(logp), torch.tensor(ids), mask=torch.tensor(mask), details=True)
    want = [reference(logp[i, :n], ids[i, :n], counts, 0.9) for i, n in enumerate(lengths)]
    np.testing.assert_allclose(info["scores"], want, rtol=1e-13)
    assert value == pytest.approx(np.mean(want), rel=1e-13)
    for i, n in enumerate(lengths):  # each row alone gives its own score
        assert e(logp[i, :n], ids[i, :n]) == pytest.approx(want[i], rel=1e-13)


def test_unsmoothed_unseen_token_clips_instead_of_nan():
    counts = np.array([5.0, 0.0, 3.0])
    logp, ids = np.log([0.4, 0.7, 0.2]), [0, 1, 2]
    e = xent_core.estimator("dc-pdd", ref_counts=counts, a=0.5, smoothing="none")
    value, info = e(logp, ids, details=True)
    assert value == pytest.approx(reference(logp, ids, counts, 0.5, "none"), rel=1e-14)
    assert math.isfinite(value) and info["clipped"] >= 1 / 3


def test_kernel_output_is_accepted_as_token_logprobs():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(11, 6, generator=g, dtype=torch.float64)
    w = torch.randn(9, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 9, (11,), generator=g)
    counts = torch.arange(1, 10, dtype=torch.float64)
    e = xent_core.estimator("dc-pdd", ref_counts=counts, a=0.7)
    logp = torch.log_softmax(h @ w.T, -1).gather(1, y[:, None])[:, 0]
    moments = xent_core.kernel("logprob-moments")(h, w, y)
    assert e(moments, y) == pytest.approx(e(logp, y), rel=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.log(PROBS), [5, 3, 5, 7, 3, 10], "outside the frequency table"),
        (np.log(PROBS) + 1, IDS, "log-probabilities"),
        (np.log(PROBS), IDS[:5], "one value per token"),
        (np.log(PROBS), None, "token_ids are required"),
        (np.log(PROBS), [5.5, 3, 5, 7, 3, 9], "whole numbers"),
        (np.log(PROBS), [-1, 3, 5, 7, 3, 9], ">= 0"),
        (np.full(6, -np.inf), IDS, "finite"),
        (np.zeros((2, 3, 1)), IDS, "shape"),
        (np.zeros(0), [], "no tokens"),
    ],
)
def test_bad_inputs(x, y, match):
    with pytest.raises(BadInputError, match=match):
        est()(x, y)


def test_bad_tables_and_parameters():
    with pytest.raises(BadInputError, match=">= 0"):
        xent_core.estimator("dc-pdd", ref_counts=[1.0, -2.0])
    with pytest.raises(BadInputError, match="shape"):
        xent_core.estimator("dc-pdd", ref_counts=np.ones((2, 2)))
    with pytest.raises(BadInputError, match="all zero"):
        xent_core.estimator("dc-pdd", ref_counts=[0, 0], smoothing="none")
    with pytest.raises(BadParameterError):
        est(a=0)
    with pytest.raises(BadParameterError):
        est(sign="high")


def test_info_cites_the_paper():
    spec = xent_core.info("dc-pdd", "estimator")
    assert "arXiv:2409.14781" in str(spec.citations)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu():
    logp = torch.tensor(np.log(PROBS), device="cuda")
    ids = torch.tensor(IDS, device="cuda")
    assert est(a=1.0)(logp, ids) == pytest.approx(0.4422965152, abs=5e-11)
