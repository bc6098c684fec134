"""Issue 15 regressions for xent_losses: non-finite logits are refused (inside the input-check
switch), -inf marks a masked class and stays usable, and wrongly typed parameters are refused."""

from __future__ import annotations

import pytest
import torch
from losses_cases import CASES, Case

import xent_core
from xent_core import BadInputError, BadParameterError

FIRST = {c.name: c for c in reversed(CASES)}  # one case per loss


@pytest.mark.parametrize("bad", (float("nan"), float("inf")), ids=("nan", "inf"))
@pytest.mark.parametrize("case", FIRST.values(), ids=lambda c: c.id)
def test_non_finite_logits_are_refused(case: Case, bad: float) -> None:
    inputs = case.make_inputs((5,), dtype=torch.float32)
    inputs["logits"][2, 1] = bad
    module = case.build("mean")
    with pytest.raises(BadInputError, match="logits contain"):
        module(**inputs)
    with xent_core.input_checks(False):  # the switch turns the check off: no error raised
        module(**inputs)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("cross-entropy", {"ignore_index": 1.5}),
        ("cross-entropy", {"ignore_index": None}),
        ("cross-entropy", {"ignore_index": True}),
        ("cross-entropy", {"softcap": "3"}),
        ("cross-entropy", {"temperature": None}),
        ("cross-entropy", {"label_smoothing": True}),
        ("focal", {"ignore_index": 2.0}),
        ("dice", {"square_denominator": "false"}),
        ("dice", {"square_denominator": 1}),
        ("ldr-kl", {"lam": "10"}),
        ("pass-at-n", {"n": 2.0}),
        ("z-loss", {"coefficient": None}),
        ("hl-gauss", {"vmin": 0.0, "vmax": 1.0, "num_bins": 4.0}),
        ("two-hot", {"vmin": "0", "vmax": 1.0, "num_bins": 4}),
        ("emo", {"max_ratio": "3"}),
        ("bias-loss", {"alpha": None}),
    ],
)
def test_wrongly_typed_parameters_are_refused(name: str, params: dict) -> None:
    with pytest.raises(BadParameterError):
        xent_core.loss(name, **params)


def test_functional_cross_entropy_refuses_typed_parameters() -> None:
    from xent_losses.cross_entropy import cross_entropy

    x, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(BadParameterError, match="ignore_index"):
        cross_entropy(x, y, ignore_index=1.5)
    with pytest.raises(BadParameterError, match="softcap"):
        cross_entropy(x, y, softcap="3")  # type: ignore[arg-type]
