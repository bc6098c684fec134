"""xent_core.metric: a torchmetrics Metric equals the estimator on the concatenated rows."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import xent_core
from xent_core import BadInputError

pytest.importorskip("torchmetrics")

GRAM = [
    ("rankme", {}),
    ("rankme", {"center": True}),
    ("erank", {"normalize_rows": False}),
    ("erank", {"center": False}),
    ("alpha-req", {}),
    ("matrix-entropy", {"normalize_rows": False}),
    ("matrix-entropy", {"center": False, "base": 2.0}),
    ("gaussian-entropy", {}),
]


def _rows(n: int = 301, d: int = 13, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a decaying spectrum and a non-zero mean, so centring and scaling matter
    scale = torch.arange(1, d + 1, dtype=torch.float64) ** -0.8
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + 0.7


def _batches(x: torch.Tensor) -> list[torch.Tensor]:
    return list(x.split([50, 7, 120, x.shape[0] - 177]))


@pytest.mark.parametrize(("name", "params"), GRAM)
def test_gram_metric_equals_the_estimator_on_all_rows(name, params):
    from xent_integrations.metrics import accumulation

    assert accumulation(name, **params) == "gram"
    x = _rows()
    m = xent_core.metric(name, **params)
    for b in _batches(x):
        m.update(b)
    want = xent_core.estimator(name, **params)(x)
    assert float(m.compute()) == pytest.approx(want, rel=1e-7, abs=1e-9)
    m.reset()
    m.update(x[:100])
    assert float(m.compute()) == pytest.approx(
        xent_core.estimator(name, **params)(x[:100]), rel=1e-7, abs=1e-9
    )


def test_epoch_rankme_is_not_the_mean_of_batch_rankme():
    x = _rows(n=400, d=48)
    m = xent_core.metric("rankme")
    est = xent_core.estimator("rankme")
    per_batch = []
    for b in x.split(40):
        m.update(b)
        per_batch.append(est(b))
    epoch = float(m.compute())
    assert epoch == pytest.approx(est(x), rel=1e-7)
    assert abs(epoch - float(np.mean(per_batch))) > 0.05 * epoch


@pytest.mark.parametrize(
    ("name", "params"),
    [("erank", {}), ("matrix-entropy", {}), ("gaussian-entropy", {"bias_correction": True})],
)
def test_centred_then_normalised_rows_fall_back_to_rows(name, params):
    from xent_integrations.metrics import accumulation

    assert accumulation(name, **params) == "rows"
    x = _rows()
    m = xent_core.metric(name, **params)
    for b in _batches(x):
        m.update(b)
    assert float(m.compute()) == pytest.approx(xent_core.estimator(name, **params)(x), rel=1e-9)


@pytest.mark.parametrize("name", ["knn-entropy", "dse", "vendi"])
def test_rows_metrics_equal_the_estimator_and_respect_max_samples(name):
    x = _rows(n=120, d=4)
    m = xent_core.metric(name)
    for b in x.split(50):
        m.update(b)
    assert float(m.compute()) == pytest.approx(xent_core.estimator(name)(x), rel=1e-9)
    capped = xent_core.metric(name, max_samples=70)
    with pytest.warns(UserWarning, match="max_samples"):
        for b in x.split(50):
            capped.update(b)
    assert float(capped.compute()) == pytest.approx(xent_core.estimator(name)(x[:70]), rel=1e-9)


def test_ksg_mi_keeps_both_inputs():
    x = _rows(n=150, d=2)
    y = x[:, :1] + 0.3 * _rows(n=150, d=1, seed=3)
    m = xent_core.metric("ksg-mi")
    for a, b in zip(x.split(40), y.split(40), strict=True):
        m.update(a, b)
    assert float(m.compute()) == pytest.approx(xent_core.estimator("ksg-mi")(x, y), rel=1e-9)


def test_token_entropy_sums_match_the_float64_mean():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 11, 37, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(3, 11, generator=g) > 0.3
    m = xent_core.metric("token-entropy")
    for i in range(3):
        m.update(logits[i], mask=mask[i])
    p = torch.softmax(logits, -1)
    ref = float(-(p * p.log()).sum(-1)[mask].mean())
    assert float(m.compute()) == pytest.approx(ref, rel=1e-10)
    hidden = torch.randn(2, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(37, 8, generator=g, dtype=torch.float64)
    h = xent_core.metric("token-entropy")
    h.update(hidden=hidden[0], classifier=w)
    h.update(hidden=hidden[1], classifier=w)
    ph = torch.softmax(hidden @ w.T, -1)
    assert float(h.compute()) == pytest.approx(float(-(ph * ph.log()).sum(-1).mean()), rel=1e-6)


@pytest.mark.parametrize("name", ["plugin-entropy", "miller-madow", "chao-shen"])
def test_discrete_counts_equal_the_estimator_on_all_samples(name):
    rng = np.random.default_rng(4)
    s = rng.zipf(1.6, size=500).clip(max=60)
    m = xent_core.metric(name)
    for b in np.split(s, [90, 91, 300]):
        m.update(torch.as_tensor(b))
    assert float(m.compute()) == pytest.approx(xent_core.estimator(name)(s), rel=1e-12)
    counts = np.bincount(s)
    p = counts[counts > 0] / len(s)
    if name == "plugin-entropy":
        assert float(m.compute()) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-12)


@pytest.mark.filterwarnings("ignore:The ..compute.. method")
def test_bad_use_is_a_clear_error():
    m = xent_core.metric("rankme")
    with pytest.raises(BadInputError):
        m.compute()
    m.update(torch.randn(5, 3))
    with pytest.raises(BadInputError, match="columns"):
        m.update(torch.randn(5, 4))
    with pytest.raises(xent_core.BadParameterError):
        xent_core.metric("rankme", max_samples=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WORKER = r"""
import os, sys, torch, torch.distributed as dist, xent_core
rank = int(sys.argv[1])
dist.init_process_group("gloo", rank=rank, world_size=2)
g = torch.Generator().manual_seed(0)
x = torch.randn(203, 9, generator=g, dtype=torch.float64) * torch.arange(1, 10) ** -1.0 + 0.5
s = torch.randint(0, 12, (203,), generator=g)
part = x[:120] if rank == 0 else x[120:]
sp = s[:120] if rank == 0 else s[120:]
out = []
for name, params in [("rankme", {}), ("alpha-req", {}), ("erank", {}), ("knn-entropy", {})]:
    m = xent_core.metric(name, **params)
    for b in part.split(33):
        m.update(b)
    out.append((float(m.compute()), xent_core.estimator(name, **params)(x)))
m = xent_core.metric("plugin-entropy")
m.update(sp)
out.append((float(m.compute()), xent_core.estimator("plugin-entropy")(s)))
print("RESULT", rank, repr(out), flush=True)
dist.destroy_process_group()
"""


def test_ddp_sync_over_two_gloo_processes(tmp_path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    env["OMP_NUM_THREADS"] = "1"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0, e[-3000:]
        line = next(ln for ln in o.splitlines() if ln.startswith("RESULT"))
        for got, want in eval(line.split(" ", 2)[2]):
            assert math.isclose(got, want, rel_tol=1e-7), (got, want)


def test_docs_examples_of_the_metric_and_the_callbacks_run():
    import re
    from pathlib import Path

    pytest.importorskip("lightning")
    pytest.importorskip("transformers")
    doc = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
    found = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    mine = [b for b in found if "EstimatorCallback(" in b or "xent_core.metric(" in b]
    assert len(mine) == 3
    for code in mine:
        scope: dict = {"__name__": "__doc__"}
        exec(compile(code, "docs/integrations.md", "exec"), scope)
        trainer = scope.get("trainer")  # the transformers block trains two steps
        logged = trainer.state.log_history[0] if trainer is not None else {}
        assert "callback" in scope or "rankme" in scope or "xent/rankme" in logged
