"""Every estimator: registered with metadata, one calling protocol, numpy == torch, CUDA parity."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from xent_estimators._common import Estimate

import xent_core

NAMES = [
    "dse", "dsmi", "rankme", "erank", "alpha-req", "matrix-entropy", "matrix-nuclear-norm",
    "vendi", "knn-entropy", "ksg-mi", "plugin-entropy", "miller-madow", "chao-shen",
    "gaussian-entropy", "token-entropy", "policy-entropy-covariance",
]  # fmt: skip


def _inputs(name: str, rng: np.random.Generator):
    """(x, y) for one estimator, odd sizes."""
    x = rng.normal(size=(53, 5))
    if name == "dsmi":
        return x, rng.integers(0, 3, size=53)
    if name == "ksg-mi":
        return x[:, :2], x[:, 2:] + x[:, :3]
    if name in ("plugin-entropy", "miller-madow", "chao-shen"):
        return rng.integers(0, 7, size=53), None
    if name == "token-entropy":
        return rng.normal(size=(9, 31)), None
    if name == "policy-entropy-covariance":
        return -rng.uniform(0, 3, size=(4, 13)), rng.normal(size=(4, 13))
    return x, None


def test_all_estimators_are_registered_with_metadata():
    specs = {s.name: s for s in xent_core.list_components("estimator", plugin="estimators")}
    assert set(NAMES) <= set(specs), set(NAMES) - set(specs)
    for name in NAMES:
        spec = specs[name]
        assert spec.summary and not spec.summary.endswith(":"), name
        assert spec.citations and all(c.title for c in spec.citations), name
        assert len(spec.doc.splitlines()) > 8, name  # formula, parameters, caveats
        for p in spec.params:
            assert p.annotation, (name, p.name)


def test_entropy_units_default_to_nats_except_diffusion_bits():
    for name in ("knn-entropy", "ksg-mi", "plugin-entropy", "miller-madow", "chao-shen",
                 "gaussian-entropy", "token-entropy", "matrix-entropy"):  # fmt: skip
        assert xent_core.estimator(name).units == "nats", name
    assert xent_core.estimator("dse").units == "bits"
    assert xent_core.estimator("dsmi").units == "bits"


@pytest.mark.parametrize("name", NAMES)
def test_protocol_float_details_and_torch_inputs(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x, y = _inputs(name, rng)
    est = xent_core.estimator(name)
    value = est(x) if y is None else est(x, y)
    assert type(value) is float and math.isfinite(value)
    out = est(x, details=True) if y is None else est(x, y, details=True)
    assert isinstance(out, Estimate) and isinstance(out.details, dict)
    v2, _details = out
    assert v2 == value
    tx = torch.from_numpy(x)
    ty = None if y is None else torch.from_numpy(y)
    tv = est(tx) if ty is None else est(tx, ty)
    assert tv == pytest.approx(value, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if n not in ("ksg-mi", "dsmi", "policy-entropy-covariance")]
)
def test_rejects_non_finite_and_wrong_rank(name):
    est = xent_core.estimator(name)
    bad = np.random.default_rng(0).normal(size=(20, 4))
    bad[3, 1] = np.nan
    if name in ("plugin-entropy", "miller-madow", "chao-shen"):
        bad = bad[:, 1]
    with pytest.raises(xent_core.BadInputError):
        est(bad)
    if name not in ("token-entropy",):
        with pytest.raises(xent_core.BadInputError):
            est(np.zeros((2, 3, 4)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_inputs_match_cpu(name):
    rng = np.random.default_rng(7)
    x, y = _inputs(name, rng)
    est = xent_core.estimator(name)
    cpu = est(x) if y is None else est(x, y)
    tx = torch.from_numpy(x).cuda()
    ty = None if y is None else torch.from_numpy(y).cuda()
    gpu = est(tx) if ty is None else est(tx, ty)
    assert gpu == pytest.approx(cpu, rel=1e-6, abs=1e-9)


def test_listing_imports_nothing_heavy_and_helpers_load_lazily():
    import subprocess
    import sys

    code = (
        "import sys, xent_core\n"
        "from xent_core.testing import isolated_registry\n"
        "with isolated_registry('xent_estimators'):\n"
        "    names = [s.name for s in xent_core.list_components('estimator')]\n"
        "assert 'dse' in names and 'token-entropy' in names\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'\n"
        "from xent_estimators import RollingEntropy, kl_cov_mask\n"
        "assert RollingEntropy.__module__ == 'xent_estimators.rolling'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
