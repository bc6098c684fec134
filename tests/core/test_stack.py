"""Loss stacks: operators, routing, weights and schedules, specs, errors, module behaviour."""

from __future__ import annotations

import pytest
import torch

import xent_core
from xent_core import BadInputError, BadParameterError, LossStack
from xent_core.stack import parse_stack_spec
from xent_core.testing import isolated_registry


@pytest.fixture(autouse=True)
def toy_registry():
    with isolated_registry("toy_plugin") as reg:
        yield reg


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (9,), generator=g)
    return logits, targets


def manual_ce(logits, targets):
    return (torch.logsumexp(logits, -1) - logits[torch.arange(len(targets)), targets]).mean()


def test_operator_stack_routes_weights_and_backpropagates():
    logits, targets = inputs()
    stack = xent_core.loss("toy-ce") + 0.5 * xent_core.loss("toy-square")
    assert isinstance(stack, LossStack)
    assert stack.term_names == ["toy-ce", "toy-square"]
    total = stack(logits=logits, targets=targets)
    expected = manual_ce(logits, targets) + 0.5 * (logits**2).mean()
    torch.testing.assert_close(total, expected)
    total.backward()
    g_stack = logits.grad.clone()
    logits.grad = None
    expected = manual_ce(logits, targets) + 0.5 * (logits**2).mean()
    expected.backward()
    torch.testing.assert_close(g_stack, logits.grad)
    torch.testing.assert_close(stack.last_values["toy-square"], (logits**2).mean().detach())
    torch.testing.assert_close(stack.last_weighted["toy-square"], 0.5 * (logits**2).mean().detach())
    logs = stack.log_dict()
    assert set(logs) == {"loss/toy-ce", "loss/toy-square", "loss/total"}
    assert logs["loss/total"] == pytest.approx(total.item())


def test_string_and_dict_specs_build_the_same_stack():
    logits, targets = inputs(1)
    a = xent_core.stack("toy-ce(scale=2.0) + 0.25*toy-square")
    b = xent_core.stack(
        [{"name": "toy-ce", "params": {"scale": 2.0}}, {"name": "toy-square", "weight": 0.25}]
    )
    c = xent_core.loss("toy-ce", scale=2.0) + xent_core.loss("toy-square") * 0.25
    values = [s(logits=logits, targets=targets) for s in (a, b, c)]
    torch.testing.assert_close(values[0], values[1])
    torch.testing.assert_close(values[0], values[2])
    assert a.weights == b.weights == [1.0, 0.25]


def test_parse_stack_spec_forms():
    assert parse_stack_spec("a") == [{"name": "a", "weight": 1.0, "params": {}}]
    assert parse_stack_spec(" 2e-1 * a(x=1, y='s', z=[1, 2]) + b*3 + plug:c(flag=True)") == [
        {"name": "a", "weight": 0.2, "params": {"x": 1, "y": "s", "z": [1, 2]}},
        {"name": "b", "weight": 3.0, "params": {}},
        {"name": "plug:c", "weight": 1.0, "params": {"flag": True}},
    ]
    assert parse_stack_spec("a(eps=1e+3)")[0]["params"] == {"eps": 1000.0}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("a(x=1", "unbalanced"),
        ("a(x=foo)", "must be a literal"),
        ("a(1)", "keyword=value"),
        ("0.5*a*2", "two weights"),
        ("a + + b", "cannot parse"),
    ],
)
def test_bad_string_specs(spec, needle):
    with pytest.raises(BadParameterError, match=needle):
        parse_stack_spec(spec)


def test_bad_dict_specs():
    with pytest.raises(BadParameterError, match="unknown key"):
        xent_core.stack([{"name": "toy-ce", "wieght": 2}])
    with pytest.raises(BadParameterError, match="must be a dict"):
        xent_core.stack(["toy-ce"])
    with pytest.raises(BadParameterError, match="valid parameters"):
        xent_core.stack("toy-ce(gamma=2)")


def test_missing_input_names_term_and_input():
    logits, _ = inputs()
    stack = xent_core.stack("toy-ce + toy-square")
    with pytest.raises(BadInputError, match=r"term 'toy-ce' needs input\(s\) 'targets'"):
        stack(logits=logits)


def test_unused_input_is_an_error():
    logits, targets = inputs()
    stack = xent_core.stack("toy-square")
    with pytest.raises(BadInputError, match="'targets' are not used"):
        stack(logits=logits, targets=targets)


def test_declared_inputs_route_to_positional_names():
    logits, _ = inputs()
    teacher = torch.randn_like(logits)
    stack = xent_core.stack("toy-distance + toy-square")
    out = stack(logits=logits, teacher_logits=teacher)
    torch.testing.assert_close(out, ((logits - teacher) ** 2).mean() + (logits**2).mean())


def test_schedule_weights_follow_the_step():
    logits, targets = inputs()
    stack = xent_core.loss("toy-ce") + xent_core.loss("toy-square") * (
        lambda step: min(1.0, step / 2)
    )
    seen = []
    for _ in range(4):
        stack(logits=logits, targets=targets)
        seen.append(float(stack.last_weighted["toy-square"] / stack.last_values["toy-square"]))
    assert seen == [0.0, 0.5, 1.0, 1.0]
    stack.eval()
    stack.step = 1
    stack(logits=logits, targets=targets)
    assert stack.step == 1  # eval calls do not advance the schedule
    scaled = 2 * stack
    assert scaled.weight_at(1, step=1) == pytest.approx(1.0)


def test_same_loss_twice_gets_unique_term_names():
    stack = xent_core.loss("toy-square") + xent_core.loss("toy-square")
    assert stack.term_names == ["toy-square", "toy-square#2"]


def test_non_scalar_term_is_rejected():
    logits, targets = inputs()
    stack = xent_core.stack("toy-ce(reduction='none')")
    with pytest.raises(BadInputError, match="not a scalar"):
        stack(logits=logits, targets=targets)


def test_stack_is_a_module_with_state_dict_and_to():
    class WithBuffer(xent_core.Loss):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", torch.tensor(3.0))

        def forward(self, logits):
            return self.scale * logits.mean()

    stack = xent_core.loss("toy-ce") + 0.5 * WithBuffer()
    assert "terms.1.scale" in stack.state_dict()
    stack = stack.to(torch.float64)
    assert stack.terms[1].scale.dtype == torch.float64
    assert sum([xent_core.loss("toy-square"), xent_core.loss("toy-ce")]).term_names == [
        "toy-square",
        "toy-ce",
    ]


def test_bad_terms_and_weights():
    with pytest.raises(BadParameterError):
        LossStack().add("not a module")  # type: ignore[arg-type]
    with pytest.raises(BadParameterError):
        LossStack().add(xent_core.loss("toy-square"), weight="heavy")  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="no terms"):
        LossStack()()
