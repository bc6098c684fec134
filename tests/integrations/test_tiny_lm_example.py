"""The examples/tiny-lm sweep in its short form: trains on the shipped text, logs, fits, plots."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-lm"
TEXT_SHA256 = "6f53a33627d6e48c9658313b23f8d39c04b918fd0330b31b0c202a2d04d6e9c1"  # data/README.md


def test_shipped_text_is_the_documented_file():
    data = (EXAMPLE / "data" / "northanger_abbey.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == TEXT_SHA256
    assert data.isascii() and b"Gutenberg" not in data  # no licence header or footer
    assert TEXT_SHA256 in (EXAMPLE / "data" / "README.md").read_text()


def test_tiny_lm_quick_sweep(tmp_path):
    spec = importlib.util.spec_from_file_location("tiny_lm_train", EXAMPLE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(quick=True, out=str(tmp_path))
    runs = res["runs"]
    sizes, losses = [r["N"] for r in runs], [r["loss"] for r in runs]
    assert sizes == sorted(sizes) and len(sizes) == 4
    for r in runs:  # training loss falls in every run (4 logs of the mean loss since the last)
        assert len(r["train_losses"]) == 4 and r["train_losses"][-1] < r["train_losses"][0] - 0.1
    assert all(loss < math.log(256) for loss in losses)  # better than a uniform byte model
    assert losses[-1] < losses[0]
    assert len(res["estimators"]) == 4  # every width logged RankMe and token entropy
    for width, logged in res["estimators"].items():  # RankMe is at most the width
        assert 1.0 <= logged["xent/rankme"] <= width
        assert 0 < logged["xent/token-entropy"] <= math.log(256) + 1e-9
    fit = res["fit"]  # the power law evaluated by hand follows the measured losses
    law = [fit["E"] + fit["A"] * n ** -fit["alpha"] for n in sizes]
    spread = max(losses) - min(losses)  # a flat line misses by half of it at least
    assert fit["alpha"] > 0 and max(abs(a - b) for a, b in zip(law, losses)) < spread / 3
    assert Path(res["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
