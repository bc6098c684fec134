"""The process-wide switch for data-dependent input checks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import xent_core
from xent_core import BadInputError, input_checks, input_checks_enabled


def test_default_on_and_context_restores():
    assert input_checks_enabled()
    with input_checks(False):
        assert not input_checks_enabled()
        with input_checks(True):
            assert input_checks_enabled()
        assert not input_checks_enabled()
    assert input_checks_enabled()


def test_env_turns_checks_off():
    env = {**os.environ, "XENT_CHECK_INPUTS": "0"}
    code = "import xent_core; print(xent_core.input_checks_enabled())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("cross-entropy", {"logits": torch.randn(4, 5), "targets": torch.tensor([0, 1, 2, 3])}),
        (
            "kd",
            {
                "logits": torch.randn(4, 5),
                "teacher_logits": torch.randn(4, 5),
                "targets": torch.tensor([0, 1, 2, 3]),
            },
        ),
        (
            "linear-cross-entropy",
            {
                "hidden": torch.randn(4, 3),
                "classifier": torch.randn(5, 3),
                "targets": torch.tensor([0, 1, 2, 3]),
            },
        ),
    ],
)
def test_first_party_losses_skip_value_checks_when_off(name, inputs):
    loss = xent_core.loss(name)
    bad = dict(inputs)
    key = (
        "teacher_logits" if name == "kd" else ("hidden" if name == "linear-cross-entropy" else None)
    )
    if key is None:  # an out-of-range target is caught by the check ...
        bad["targets"] = torch.tensor([0, 1, 2, 7])
    else:  # ... and so is a NaN in a float input
        bad[key] = bad[key].clone()
        bad[key][0, 0] = float("nan")
    with pytest.raises(BadInputError):
        loss(**bad)
    with input_checks(False):
        if key is None:
            with pytest.raises((IndexError, RuntimeError)):  # unchecked: torch's own error
                loss(**bad)
        else:
            assert torch.isnan(loss(**bad))  # unchecked: the NaN flows through
        assert torch.isfinite(loss(**inputs))  # good inputs are unaffected
