"""The bad-input contract, swept over every registered loss.

For each loss of the first-party registry (its own ``example_inputs``, or inputs built from its
spec: input names and parameters):
NaN and inf in every floating input, wrong dtypes, out-of-range targets, a short ``targets``, an
empty batch and an all-ignored batch (``xent_core.testing.check_bad_inputs``), and wrongly typed
parameters. The contract: a ``XentError``, or a correct finite value where the input is
legitimately fine; never a raw exception or a silent NaN. Known gaps are listed in
``KNOWN_GAPS`` with their reason and run as strict xfails: once fixed, the entry must go.
"""

from __future__ import annotations

import pytest
from sweep_inputs import first_party, loss_inputs, required_params, wrong_values

import xent_core
from xent_core import XentError
from xent_core.testing import BAD_INPUT_CHECKS, check_bad_inputs

REGISTRY = first_party()
SPECS = {s.qualified_id: s for s in REGISTRY.specs("loss")}

#: inputs in which a loss documents NaN as "ignore this item" (a legitimate input, not an error)
NAN_MARKS_IGNORED: dict[str, tuple[str, ...]] = {
    "losses:hl-gauss": ("values",),
    "losses:two-hot": ("values",),
}


#: (loss id, check) -> why it fails today (issue 15 item); the owner fixes it and deletes the
#: line (the case is a strict xfail: a fixed gap left here fails the suite)
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _case(qid: str, check: str):
    reason = KNOWN_GAPS.get((qid, check))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(qid, check, marks=marks, id=f"{qid}-{check}")


@pytest.fixture(scope="module", autouse=True)
def registry():
    previous = xent_core.set_registry(REGISTRY)
    yield REGISTRY
    xent_core.set_registry(previous)


@pytest.mark.parametrize(("qid", "check"), [_case(q, c) for q in SPECS for c in BAD_INPUT_CHECKS])
def test_bad_inputs(qid, check):
    spec = SPECS[qid]
    params = required_params(spec)
    has_ignore = "ignore_index" in spec.param_names

    def factory(reduction):
        return xent_core.loss(qid, reduction=reduction, **params)

    check_bad_inputs(
        factory,
        loss_inputs(spec),
        ignore_index=-100 if has_ignore else None,
        checks=(check,),
        nan_marks_ignored=NAN_MARKS_IGNORED.get(qid, ()),
    )


def _param_cases():
    for qid, spec in SPECS.items():
        for name, value in wrong_values(spec):
            yield _case(qid, f"param:{name}={value!r}")


@pytest.mark.parametrize(("qid", "check"), list(_param_cases()))
def test_wrongly_typed_parameters(qid, check):
    spec = SPECS[qid]
    name = check.removeprefix("param:").partition("=")[0]
    value = next(v for n, v in wrong_values(spec) if f"param:{n}={v!r}" == check)
    params = {**required_params(spec), name: value}
    try:
        loss = xent_core.loss(qid, **params)
        out = loss(**loss_inputs(spec))
    except XentError:
        return
    except Exception as exc:
        pytest.fail(f"{qid}({name}={value!r}) raised a raw {type(exc).__name__}: {exc}")
    pytest.fail(f"{qid}({name}={value!r}) was accepted (returned {out!r}); expected a XentError")
