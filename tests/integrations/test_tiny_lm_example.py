"""The examples/tiny-lm sweep in its short form: trains, logs estimators, fits a power law."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tiny-lm" / "train.py"


def test_tiny_lm_quick_sweep(tmp_path):
    spec = importlib.util.spec_from_file_location("tiny_lm_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(quick=True, out=str(tmp_path))
    losses = [r["loss"] for r in res["runs"]]
    sizes = [r["N"] for r in res["runs"]]
    assert sizes == sorted(sizes) and len(sizes) == 4
    assert all(loss < math.log(256) for loss in losses)  # better than a uniform byte model
    assert losses[-1] < losses[0]
    for logged in res["estimators"].values():
        assert 1.0 <= logged["xent/rankme"] and 0 < logged["xent/token-entropy"] < math.log(256)
    assert res["fit"]["alpha"] > 0
    assert Path(res["plot"]).stat().st_size > 0
