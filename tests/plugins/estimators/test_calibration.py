"""Calibration metrics: ece, brier-score, ks-calibration-error vs the spec's values and peers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError

# the calibration fixture: 8 rows of 3-class logits (values computed in float64; torchmetrics and
# netcal agree on them)
LOGITS = np.array(
    [[2, 0.5, -1], [0.2, 0.1, 0], [1.5, 1.4, -0.3], [-0.5, 2.5, 0],
     [0, 0, 3], [1, -1, 0.5], [0.3, 0.9, 0.6], [2.2, -0.4, 0.1]]
)  # fmt: skip
LABELS = np.array([0, 2, 1, 1, 2, 0, 0, 0])
BIN_P = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.6, 0.7, 0.8, 0.95])
BIN_Y = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def random_case(seed: int, n: int = 503, c: int = 7, scale: float = 2.5):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * scale
    # an over-confident model: labels drawn from a flatter softmax than the one it reports
    y = np.array([rng.choice(c, p=q) for q in softmax(z / 2.0)])
    return z, softmax(z), y


def est(name: str, **params):
    return xent_core.estimator(name, **params)


# ------------------------------------------------------------------------------ spec values
@pytest.mark.parametrize(
    "n_bins, norm, want",
    [(15, "l1", 0.2873422162), (15, "max", 0.4830599787), (10, "l1", 0.2873422162),
     (10, "max", 0.4599058978)],
)  # fmt: skip
def test_fixture_ece_and_mce(n_bins, norm, want):
    e = est("ece", n_bins=n_bins, norm=norm, from_logits=True)
    assert e(LOGITS, LABELS) == pytest.approx(want, abs=1e-10)
    assert est("ece", n_bins=n_bins, norm=norm)(softmax(LOGITS), LABELS) == pytest.approx(
        want, abs=1e-10
    )


def test_fixture_brier_forms():
    assert est("brier-score", from_logits=True)(LOGITS, LABELS) == pytest.approx(
        0.3282179023, abs=1e-10
    )
    assert est("brier-score", mode="top-label", from_logits=True)(LOGITS, LABELS) == pytest.approx(
        0.1043837683, abs=1e-10
    )
    assert est("brier-score", mode="binary")(BIN_P, BIN_Y) == pytest.approx(0.18075, abs=1e-12)


def test_fixture_ks_and_balanced_ece():
    assert est("ks-calibration-error", mode="binary")(BIN_P, BIN_Y) == pytest.approx(
        0.09, abs=1e-12
    )
    balanced = est("ece", mode="binary", binning="quantile", weighting="uniform", n_bins=5)
    assert balanced(BIN_P, BIN_Y) == pytest.approx(0.135, abs=1e-12)


def test_details_hold_the_reliability_table():
    value, d = est("ece", from_logits=True)(LOGITS, LABELS, details=True)
    assert d["bin_edges"].shape == (16,) and d["counts"].sum() == 8
    full = d["counts"] > 0
    gaps = np.abs(d["accuracy"] - d["mean_confidence"])[full]
    assert value == pytest.approx(float((d["counts"][full] / 8 * gaps).sum()), abs=1e-15)
    assert np.isnan(d["accuracy"][~full]).all()
    assert d["accuracy_overall"] == pytest.approx(0.625)
    for name in ("brier-score", "ks-calibration-error"):
        _, d2 = est(name, from_logits=True)(LOGITS, LABELS, details=True)
        assert d2["counts"].sum() == 8 and d2["bin_edges"].shape == (16,)


# ------------------------------------------------------------------------------ peers
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_torchmetrics_multiclass(seed, norm):
    from torchmetrics.functional.classification import multiclass_calibration_error

    _, p, y = random_case(seed)
    want = multiclass_calibration_error(
        torch.from_numpy(p), torch.from_numpy(y), num_classes=p.shape[1], n_bins=15, norm=norm
    )
    # torchmetrics' multiclass path computes in float32
    assert est("ece", norm=norm)(p, y) == pytest.approx(float(want), abs=2e-7)


def test_binary_ece_matches_torchmetrics():
    from torchmetrics.functional.classification import binary_calibration_error

    rng = np.random.default_rng(3)
    p = rng.uniform(size=611)
    y = (rng.uniform(size=611) < p**1.5).astype(np.int64)
    for norm in ("l1", "l2", "max"):
        want = binary_calibration_error(torch.from_numpy(p), torch.from_numpy(y), 10, norm=norm)
        got = est("ece", mode="binary", n_bins=10, norm=norm)(p, y)
        assert got == pytest.approx(float(want), abs=1e-12), norm


def test_ece_and_mce_match_netcal():
    from netcal.metrics import ECE, MCE

    _, p, y = random_case(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ece = ECE(bins=15).measure(p, y)
        mce = MCE(bins=15).measure(p, y)
    assert est("ece")(p, y) == pytest.approx(ece, abs=1e-12)
    assert est("ece", norm="max")(p, y) == pytest.approx(mce, abs=1e-12)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_binary_table_matches_sklearn_calibration_curve(strategy):
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(7)
    p = rng.beta(2, 3, size=401)
    y = (rng.uniform(size=401) < p).astype(np.int64)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy=strategy)
    value, d = est("ece", mode="binary", binning=strategy, n_bins=8, weighting="uniform")(
        p, y, details=True
    )
    full = d["counts"] > 0
    np.testing.assert_allclose(d["accuracy"][full], prob_true, atol=1e-12)
    np.testing.assert_allclose(d["mean_confidence"][full], prob_pred, atol=1e-12)
    assert value == pytest.approx(float(np.abs(prob_true - prob_pred).mean()), abs=1e-12)


def test_brier_matches_sklearn():
    from sklearn.metrics import brier_score_loss

    _, p, y = random_case(11, c=5)
    # sklearn's multiclass Brier is the full sum over classes (scale_by_half='auto' halves binary)
    want = brier_score_loss(y, p, labels=list(range(5)))
    assert est("brier-score")(p, y) == pytest.approx(want, abs=1e-12)
    rng = np.random.default_rng(12)
    pb = rng.uniform(size=97)
    yb = rng.integers(0, 2, size=97)
    assert est("brier-score", mode="binary")(pb, yb) == pytest.approx(
        brier_score_loss(yb, pb), abs=1e-12
    )
    two = np.stack([1 - pb, pb], axis=1)
    assert est("brier-score")(two, yb) == pytest.approx(2 * brier_score_loss(yb, pb), abs=1e-12)


# ------------------------------------------------------------------------------ float64 oracles
def naive_ece(conf, correct, n_bins, weighting="count"):
    """Loop over uniform (lo, hi] bins; the first bin also takes c == 0."""
    gaps, weights = [], []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            gaps.append(abs(conf[inside].mean() - correct[inside].mean()))
            weights.append(inside.mean())
    gaps, weights = np.array(gaps), np.array(weights)
    return float((gaps * weights).sum()) if weighting == "count" else float(gaps.mean())


def test_classwise_is_the_mean_of_per_class_binary_errors():
    _, p, y = random_case(13, c=4)
    want = np.mean([naive_ece(p[:, c], (y == c).astype(float), 12) for c in range(4)])
    value, d = est("ece", mode="classwise", n_bins=12)(p, y, details=True)
    assert value == pytest.approx(want, abs=1e-12)
    assert d["counts"].shape == (4, 12) and d["per_class"].shape == (4,)


def test_uniform_weighting_and_leading_dims_and_ignore_index():
    z, p, y = random_case(17)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    assert est("ece", weighting="uniform")(p, y) == pytest.approx(
        naive_ece(conf, correct, 15, "uniform"), abs=1e-12
    )
    # (B, T, C) inputs are flattened; ignored targets are dropped
    y_ign = y.copy()
    y_ign[::5] = -100
    keep = y_ign != -100
    want = naive_ece(conf[keep], correct[keep], 15)
    got = est("ece", from_logits=True)(z[:500].reshape(4, 125, -1), y_ign[:500].reshape(4, 125))
    want = naive_ece(conf[:500][keep[:500]], correct[:500][keep[:500]], 15)
    assert got == pytest.approx(want, abs=1e-12)


def test_ks_matches_a_direct_loop():
    _, p, y = random_case(19, n=201)
    conf, correct = p.max(1), (p.argmax(1) == y).astype(float)
    order = np.argsort(conf)
    best, run = 0.0, 0.0
    for i in order:
        run += conf[i] - correct[i]
        best = max(best, abs(run) / len(conf))
    assert est("ks-calibration-error")(p, y) == pytest.approx(best, abs=1e-12)


def test_logits_probs_torch_numpy_and_float32_agree():
    z, p, y = random_case(23)
    ref = est("ece")(p, y)
    assert est("ece", from_logits=True)(z, y) == pytest.approx(ref, abs=1e-12)
    assert est("ece")(torch.from_numpy(p), torch.from_numpy(y)) == ref
    assert est("ece")(torch.from_numpy(p).float(), y) == pytest.approx(ref, abs=1e-6)
    # a binary problem as (N,) logits equals its (N, 2) probabilities
    s = z[:, 0] - z[:, 1]
    yb = (y % 2).astype(np.int64)
    two = np.stack([1 / (1 + np.exp(s)), 1 / (1 + np.exp(-s))], axis=1)
    for name in ("ece", "brier-score", "ks-calibration-error"):
        a = est(name, mode="binary", from_logits=True)(s, yb)
        assert a == pytest.approx(est(name, mode="binary")(two, yb), abs=1e-12), name


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", ["ece", "brier-score", "ks-calibration-error"])
def test_bad_inputs_raise_xent_errors(name):
    e = est(name)
    _, p, y = random_case(29, n=31)
    with pytest.raises(BadInputError, match="from_logits"):
        e(p * 3 - 1, y)  # logits passed as probabilities
    with pytest.raises(BadInputError, match="sum to 1"):
        e(p * 0.5, y)
    with pytest.raises(BadInputError, match="out of range"):
        e(p, y + 7)
    with pytest.raises(BadInputError, match="shape"):
        e(p, y[:-1])
    with pytest.raises(BadInputError, match="NaN"):
        bad = p.copy()
        bad[0, 0] = np.nan
        e(bad, y)
    with pytest.raises(BadInputError, match="targets"):
        e(p)
    with pytest.raises(BadInputError, match=r"empty|ignored"):
        e(p, np.full_like(y, -100))
    with pytest.raises(BadInputError, match="integer"):
        e(p, y + 0.5)


def test_bad_parameters_raise():
    with pytest.raises(BadParameterError):
        est("ece", n_bins=0)
    with pytest.raises(BadParameterError):
        est("ece", norm="l3")
    with pytest.raises(BadParameterError):
        est("ece", binning="adaptive")
    with pytest.raises(BadParameterError):
        est("ece", from_logits="yes")
    with pytest.raises(BadParameterError):
        est("brier-score", mode="classwise")
    with pytest.raises(BadInputError, match="binary"):
        est("ece", mode="binary")(random_case(1)[1], random_case(1)[2])


def test_registered_with_metadata_and_unambiguous_names():
    for name in ("ece", "brier-score", "ks-calibration-error"):
        spec = xent_core.info(name)
        assert spec.kind == "estimator" and spec.plugin == "estimators"
        assert spec.citations and "Args:" in spec.doc
    assert xent_core.info("ece").citations[0].arxiv == "arXiv:1706.04599"
