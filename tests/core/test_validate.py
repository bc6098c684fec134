"""The shared parameter validators: canonical values back, BadParameterError otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xent_core import BadParameterError, validate


def test_number_accepts_reals_in_bounds_and_returns_float() -> None:
    assert validate.number("x", 2) == 2.0
    assert isinstance(validate.number("x", np.float32(0.5)), float)
    assert validate.number("x", 1.0, low=1.0) == 1.0
    assert validate.number("x", math.inf, allow_inf=True) == math.inf


@pytest.mark.parametrize("bad", [True, "3", None, [1.0], math.nan, math.inf, np.bool_(True)])
def test_number_rejects_non_numbers_and_non_finite(bad: object) -> None:
    with pytest.raises(BadParameterError, match="temperature"):
        validate.number("temperature", bad)


def test_number_bounds_open_and_closed() -> None:
    with pytest.raises(BadParameterError, match=r"\(0, inf\)"):
        validate.positive("t", 0)
    assert validate.nonnegative("t", 0) == 0.0
    with pytest.raises(BadParameterError, match=r"\[0, 1\]"):
        validate.unit_interval("p", 1.5)
    with pytest.raises(BadParameterError):
        validate.unit_interval("p", 1.0, open_high=True)


@pytest.mark.parametrize("bad", [1.5, 1.0, True, "1", None, np.float64(2.0)])
def test_integer_rejects_floats_bools_and_strings(bad: object) -> None:
    with pytest.raises(BadParameterError, match="ignore_index"):
        validate.integer("ignore_index", bad)


def test_integer_accepts_numpy_ints_and_checks_range() -> None:
    assert validate.integer("k", np.int64(3), low=1) == 3
    with pytest.raises(BadParameterError, match=r"\[1, inf\]"):
        validate.integer("k", 0, low=1)


@pytest.mark.parametrize("bad", ["no", "false", 0, 1, None])
def test_flag_rejects_truthy_non_booleans(bad: object) -> None:
    with pytest.raises(BadParameterError, match="shift"):
        validate.flag("shift", bad)


def test_flag_choice_reduction_optional() -> None:
    assert validate.flag("shift", np.bool_(False)) is False
    assert validate.choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(BadParameterError, match="'a', 'b'"):
        validate.choice("mode", "c", ("a", "b"))
    assert validate.reduction("sum") == "sum"
    with pytest.raises(BadParameterError, match="reduction"):
        validate.reduction("avg")
    assert validate.optional(validate.positive, "softcap", None) is None
    assert validate.optional(validate.positive, "softcap", 3) == 3.0


def test_validate_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, xent_core.validate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
