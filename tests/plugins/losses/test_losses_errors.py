"""Every bad input or parameter raises a XentError subclass that says what was wrong."""

from __future__ import annotations

import pytest
import torch
from losses_cases import CASES, Case

import xent_core
from xent_core import BadInputError, BadParameterError, XentError

FIRST_CASES = {}
for _case in CASES:
    FIRST_CASES.setdefault(_case.name, _case)
ONE_PER_LOSS = list(FIRST_CASES.values())


def _ids(case: Case) -> str:
    return case.name


def _good(case: Case) -> dict[str, torch.Tensor]:
    return case.make_inputs((4,), dtype=torch.float32, ignore=False)


@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=_ids)
def test_integer_logits_are_rejected(case: Case) -> None:
    inputs = _good(case)
    inputs["logits"] = inputs["logits"].long()
    with pytest.raises(BadInputError, match="floating"):
        case.build()(**inputs)


@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=_ids)
def test_mismatched_leading_shapes_are_rejected(case: Case) -> None:
    inputs = _good(case)
    key = "values" if case.kind == "values" else "targets"
    inputs[key] = torch.cat([inputs[key], inputs[key][:1]])
    with pytest.raises(BadInputError, match="shape"):
        case.build()(**inputs)


@pytest.mark.parametrize("bad", (5, -1, 99))
@pytest.mark.parametrize("case", [c for c in ONE_PER_LOSS if c.kind == "ids"], ids=_ids)
def test_out_of_range_targets_are_rejected(case: Case, bad: int) -> None:
    inputs = _good(case)
    inputs["targets"][2] = bad
    with pytest.raises(BadInputError, match=rf"target {bad} is out of range.*\[0, 5\)"):
        case.build()(**inputs)


@pytest.mark.parametrize("case", [c for c in ONE_PER_LOSS if c.kind == "ids"], ids=_ids)
def test_wrong_target_dtypes_are_rejected(case: Case) -> None:
    inputs = _good(case)
    inputs["targets"] = inputs["targets"].bool()
    with pytest.raises(BadInputError, match="integer class ids"):
        case.build()(**inputs)
    inputs["targets"] = torch.rand(4)  # floats of the ids' shape: not probabilities either
    with pytest.raises(BadInputError, match="targets"):
        case.build()(**inputs)


@pytest.mark.parametrize(
    "name", ("comp-sum", "generalized-ce", "mae", "focal", "ldr-kl", "pass-at-n", "bias-loss")
)
def test_losses_without_soft_targets_say_so(name: str) -> None:
    logits = torch.randn(4, 5)
    extra = {"features": torch.randn(4, 3)} if name == "bias-loss" else {}
    with pytest.raises(BadInputError, match="probability targets"):
        xent_core.loss(name)(logits=logits, targets=torch.softmax(logits, -1), **extra)


def test_negative_probability_targets_are_rejected() -> None:
    q = torch.full((3, 4), 0.25)
    q[0, 0] = -0.1
    with pytest.raises(BadInputError, match="non-negative"):
        xent_core.loss("cross-entropy")(logits=torch.randn(3, 4), targets=q)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("cross-entropy", {"weight": [1.0, -0.5, 1.0]}),
        ("cross-entropy", {"weight": [1.0, float("nan")]}),
        ("cross-entropy", {"weight": [[1.0, 2.0]]}),
        ("cross-entropy", {"weight": "heavy"}),
        ("focal", {"alpha": [0.5, -1.0]}),
        ("focal", {"alpha": -0.25}),
    ],
)
def test_negative_or_malformed_class_weights_are_rejected(name, params) -> None:
    with pytest.raises(BadParameterError, match=r"weight|alpha"):
        xent_core.loss(name, **params)


def test_class_weight_length_must_match_the_classes() -> None:
    loss = xent_core.loss("cross-entropy", weight=[1.0, 2.0, 3.0])
    with pytest.raises(BadInputError, match="3 entries but logits have 5 classes"):
        loss(logits=torch.randn(2, 5), targets=torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("name", "params", "word"),
    [
        ("cross-entropy", {"reduction": "avg"}, "reduction"),
        ("cross-entropy", {"label_smoothing": 1.5}, "label_smoothing"),
        ("cross-entropy", {"temperature": 0.0}, "temperature"),
        ("cross-entropy", {"softcap": -1.0}, "softcap"),
        ("cross-entropy", {"z_loss": float("inf")}, "z_loss"),
        ("z-loss", {"coefficient": -1.0}, "coefficient"),
        ("comp-sum", {"tau": -0.5}, "tau"),
        ("generalized-ce", {"q": -1.0}, "q"),
        ("focal", {"gamma": -2.0}, "gamma"),
        ("poly1", {"epsilon": -3.0}, "epsilon"),
        ("ldr-kl", {"lam": 0.0}, "lam"),
        ("ldr-kl", {"normalize": "softmax"}, "normalize"),
        ("aldr-kl", {"num_samples": 10, "alpha": 1.0}, "alpha"),
        ("aldr-kl", {"num_samples": 0}, "num_samples"),
        ("aldr-kl", {"num_samples": 2.5}, "num_samples"),
        ("dice", {"smooth": 0.0}, "smooth"),
        ("bias-loss", {"beta": 1.0}, "beta"),
        ("pass-at-n", {"n": 0}, "n must"),
        ("pass-at-n", {"n": 2.5}, "n must"),
        ("emo", {"mix": "average"}, "mix"),
        ("emo", {"embedding": [[1.0, 0.0]]}, "embedding"),
        ("hl-gauss", {"vmin": 1.0, "vmax": 1.0, "num_bins": 5}, "vmax"),
        ("hl-gauss", {"vmin": 0.0, "vmax": 1.0, "num_bins": 1}, "num_bins"),
        ("hl-gauss", {"vmin": 0.0, "vmax": 1.0, "num_bins": 5, "sigma_ratio": 0.0}, "sigma_ratio"),
        ("two-hot", {"vmin": 0.0, "vmax": float("nan"), "num_bins": 5}, "vmax"),
    ],
)
def test_bad_parameters_are_rejected(name, params, word) -> None:
    with pytest.raises(BadParameterError, match=word):
        xent_core.loss(name, **params)


def test_unknown_and_missing_parameters_come_from_the_registry() -> None:
    with pytest.raises(BadParameterError, match="valid parameters"):
        xent_core.loss("focal", gama=2.0)
    with pytest.raises(BadParameterError, match="num_samples"):
        xent_core.loss("aldr-kl")
    with pytest.raises(BadParameterError, match="vmin"):
        xent_core.loss("hl-gauss", vmax=1.0, num_bins=3)


@pytest.mark.parametrize(
    ("case_name", "missing"),
    [
        ("aldr-kl", "sample_ids"),
        ("bias-loss", "features"),
        ("hl-gauss", "values"),
        ("two-hot", "values"),
        ("emo", "classifier"),
    ],
)
def test_missing_auxiliary_inputs_raise_clearly(case_name: str, missing: str) -> None:
    case = FIRST_CASES[case_name]
    inputs = _good(case)
    inputs.pop(missing)
    with pytest.raises(BadInputError, match=missing):
        case.build()(**inputs)
    # inside a stack the term's declared inputs are checked before it runs
    stack = xent_core.stack(
        [
            {
                "name": case_name,
                "params": {k: v for k, v in case.params.items()}
                | ({"num_samples": 40} if case_name == "aldr-kl" else {}),
            }
        ]
    )
    with pytest.raises(XentError, match=missing):
        stack(**inputs)


def test_bad_sample_ids_are_rejected() -> None:
    loss = xent_core.loss("aldr-kl", num_samples=10)
    logits, targets = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(BadInputError, match=r"sample id 10 is out of range \[0, 10\)"):
        loss(logits=logits, targets=targets, sample_ids=torch.tensor([0, 10, 2]))
    with pytest.raises(BadInputError, match="integer"):
        loss(logits=logits, targets=targets, sample_ids=torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(BadInputError, match="shape"):
        loss(logits=logits, targets=targets, sample_ids=torch.tensor([0, 1]))
    with pytest.raises(BadInputError, match="at least 2 classes"):
        loss(
            logits=torch.randn(3, 1),
            targets=torch.zeros(3, dtype=torch.long),
            sample_ids=torch.tensor([0, 1, 2]),
        )


def test_bad_features_values_and_embeddings_are_rejected() -> None:
    logits, targets = torch.randn(3, 4), torch.tensor([0, 1, 2])
    bias = xent_core.loss("bias-loss")
    with pytest.raises(BadInputError, match="at least 2 values per item"):
        bias(logits=logits, targets=targets, features=torch.randn(3, 1))
    with pytest.raises(BadInputError, match="features must have shape"):
        bias(logits=logits, targets=targets, features=torch.randn(4, 5))
    with pytest.raises(BadInputError, match="floating"):
        bias(logits=logits, targets=targets, features=torch.ones(3, 5, dtype=torch.long))
    hl = xent_core.loss("hl-gauss", vmin=0.0, vmax=1.0, num_bins=4)
    with pytest.raises(BadInputError, match="finite"):
        hl(logits=logits, values=torch.tensor([0.5, float("inf"), 0.1]))
    with pytest.raises(BadInputError, match="floating"):
        hl(logits=logits, values=torch.tensor([0, 1, 0]))
    with pytest.raises(BadInputError, match="num_bins=4"):
        hl(logits=torch.randn(3, 5), values=torch.rand(3))
    emo = xent_core.loss("emo")
    with pytest.raises(BadInputError, match=r"\(V, D\) with V = 4"):
        emo(logits=logits, targets=targets, classifier=torch.randn(5, 2))
    with pytest.raises(BadInputError, match="floating"):
        emo(logits=logits, targets=targets, classifier=torch.ones(4, 2, dtype=torch.long))


def test_non_tensor_inputs_are_rejected() -> None:
    with pytest.raises(BadInputError, match=r"torch\.Tensor"):
        xent_core.loss("cross-entropy")(logits=[[0.0, 1.0]], targets=torch.tensor([0]))
    with pytest.raises(BadInputError, match=r"torch\.Tensor"):
        xent_core.loss("cross-entropy")(logits=torch.randn(1, 2), targets=[0])
