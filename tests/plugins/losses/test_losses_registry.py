"""Registration metadata, creation through the registry, stacks, and ALDR-KL's saved state."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from xent_losses import LOSSES

import xent_core
from xent_core.base_loss import Loss

REQUIRED = {
    "aldr-kl": {"num_samples": 8},
    "hl-gauss": {"vmin": 0.0, "vmax": 1.0, "num_bins": 5},
    "two-hot": {"vmin": 0.0, "vmax": 1.0, "num_bins": 5},
}
ISSUE_NAMES = {
    "cross-entropy", "z-loss", "comp-sum", "generalized-ce", "mae", "focal", "poly1", "ldr-kl",
    "aldr-kl", "dice", "bias-loss", "hl-gauss", "two-hot", "pass-at-n", "emo",
}  # fmt: skip
# losses without a logits input: sequence log-probabilities (RL), embeddings
# (contrastive, representation regularisers), attention maps or predictions
NO_LOGITS = {
    "implicit-prm",
    "clip-cov",
    "kl-cov",
    "nt-xent",
    "attention-entropy-reg",
    "cs-ib",
    "mmcr",
    "nn-entropy-reg",
    "matrix-entropy-reg",
    "dcov-reg",
}


def test_every_issue_component_is_registered_with_metadata() -> None:
    specs = {s.name: s for s in xent_core.list_components("loss", plugin="losses")}
    assert ISSUE_NAMES <= set(specs) == set(LOSSES)
    for name, spec in specs.items():
        assert spec.summary and len(spec.summary) < 100, name
        assert "Citation" in spec.doc, name
        assert spec.citations and all(c.arxiv.startswith("arXiv:") for c in spec.citations), name
        assert "logits" in spec.inputs + spec.optional_inputs or name in NO_LOGITS, name
        assert "reduction" in spec.param_names, name
        assert spec.capabilities.get("differentiable") is True, name
    assert specs["aldr-kl"].inputs == ("logits", "targets", "sample_ids")
    assert specs["bias-loss"].inputs == ("logits", "targets", "features")
    assert specs["hl-gauss"].inputs == ("logits", "values")
    assert specs["emo"].optional_inputs == ("classifier",)
    assert specs["z-loss"].optional_inputs == ("targets",)


def test_listing_does_not_import_torch() -> None:
    code = (
        "import sys, xent_core\n"
        "specs = xent_core.list_components('loss', plugin='losses')\n"
        "assert len(specs) >= 15, len(specs)\n"
        "xent_core.info('aldr-kl').to_dict()\n"
        "assert 'torch' not in sys.modules, 'listing imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("name", sorted(ISSUE_NAMES))
def test_each_loss_is_created_by_name(name: str) -> None:
    loss = xent_core.loss(name, **REQUIRED.get(name, {}))
    assert isinstance(loss, Loss)
    assert loss.xent_spec.name == name
    assert (
        xent_core.loss(name.upper().replace("-", "_"), **REQUIRED.get(name, {})).xent_spec.name
        == name
    )


def test_stack_of_cross_entropy_and_z_loss() -> None:
    logits = torch.randn(6, 9, dtype=torch.float64)
    targets = torch.randint(0, 9, (6,))
    targets[0] = -100
    stack = xent_core.stack("cross-entropy + 0.1*z-loss")
    value = stack(logits=logits, targets=targets)
    ok = targets != -100
    expected = (
        F.cross_entropy(logits, targets)
        + 0.1 * 1e-4 * (torch.logsumexp(logits[ok], -1) ** 2).mean()
    )
    torch.testing.assert_close(value, expected, rtol=1e-13, atol=0)
    assert set(stack.log_dict()) == {"loss/cross-entropy", "loss/z-loss", "loss/total"}


def test_a_stack_routes_every_auxiliary_input_by_name() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 6, (2, 3), generator=gen)
    targets[1, 2] = -100
    inputs = {
        "logits": logits,
        "targets": targets,
        "features": torch.randn(2, 3, 8, generator=gen, dtype=torch.float64),
        "classifier": torch.randn(6, 4, generator=gen, dtype=torch.float64),
        "sample_ids": torch.arange(6).reshape(2, 3),
    }
    spec = (
        "cross-entropy(label_smoothing=0.1) + 0.5*bias-loss + 0.2*emo(mix='none') "
        "+ aldr-kl(num_samples=6, lam0=2.0) + 0.3*focal(gamma=1.0) + dice + pass-at-n(n=3)"
    )
    stack = xent_core.stack(spec)
    stack.eval()  # keep aldr-kl's state fixed so the terms can be recomputed one by one
    total = stack(**inputs)
    parts = [
        xent_core.loss("cross-entropy", label_smoothing=0.1)(logits=logits, targets=targets),
        0.5
        * xent_core.loss("bias-loss")(logits=logits, targets=targets, features=inputs["features"]),
        0.2
        * xent_core.loss("emo", mix="none")(
            logits=logits, targets=targets, classifier=inputs["classifier"]
        ),
        xent_core.loss("aldr-kl", num_samples=6, lam0=2.0)(
            logits=logits, targets=targets, sample_ids=inputs["sample_ids"]
        ),
        0.3 * xent_core.loss("focal", gamma=1.0)(logits=logits, targets=targets),
        xent_core.loss("dice")(logits=logits, targets=targets),
        xent_core.loss("pass-at-n", n=3)(logits=logits, targets=targets),
    ]
    torch.testing.assert_close(total, sum(parts), rtol=1e-12, atol=0)
    total.backward()
    assert torch.isfinite(logits.grad).all() and torch.all(logits.grad[1, 2] == 0)


def test_regression_losses_stack_on_values() -> None:
    logits = torch.randn(5, 7, dtype=torch.float64)
    values = torch.rand(5, dtype=torch.float64) * 4 - 2
    stack = xent_core.stack(
        "hl-gauss(vmin=-2, vmax=2, num_bins=7) + 0.5*two-hot(vmin=-2, vmax=2, num_bins=7)"
    )
    expected = xent_core.loss("hl-gauss", vmin=-2, vmax=2, num_bins=7)(
        logits=logits, values=values
    ) + 0.5 * xent_core.loss("two-hot", vmin=-2, vmax=2, num_bins=7)(logits=logits, values=values)
    torch.testing.assert_close(stack(logits=logits, values=values), expected)


def _aldr_step(loss, logits, targets, ids):
    return loss(logits=logits, targets=targets, sample_ids=ids)


def test_aldr_kl_state_is_per_sample_saved_and_restored() -> None:
    gen = torch.Generator().manual_seed(4)
    loss = xent_core.loss("aldr-kl", num_samples=12, lam0=3.0, alpha=2.0)
    assert "lambdas" in loss.state_dict()
    torch.testing.assert_close(loss.lambdas, torch.full((12,), 3.0, dtype=torch.float64))
    logits = torch.randn(5, 4, generator=gen) * 3
    targets = torch.randint(0, 4, (5,), generator=gen)
    targets[3] = -100
    ids = torch.tensor([7, 0, 11, 5, 2])
    _aldr_step(loss, logits, targets, ids)
    touched = torch.tensor([7, 0, 11, 2])
    assert torch.all(loss.lambdas[touched] < 3.0) and torch.all(loss.lambdas[touched] >= 1.5)
    untouched = torch.tensor([i for i in range(12) if i not in (7, 0, 11, 2)])
    assert torch.all(loss.lambdas[untouched] == 3.0)  # includes 5: its item was ignored
    # equal scores, no margin: the worst-case label distribution is uniform, KL = 0, lam = lam0
    no_margin = xent_core.loss("aldr-kl", num_samples=12, lam0=3.0, margin=0.0)
    no_margin.lambdas.fill_(2.0)
    _aldr_step(no_margin, torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([7, 0]))
    torch.testing.assert_close(
        no_margin.lambdas[[7, 0]], torch.full((2,), 3.0, dtype=torch.float64)
    )
    # state round trip, and eval mode reads without writing
    _aldr_step(loss, logits, targets, ids)
    saved = {k: v.clone() for k, v in loss.state_dict().items()}
    fresh = xent_core.loss("aldr-kl", num_samples=12, lam0=3.0, alpha=2.0)
    fresh.load_state_dict(saved)
    torch.testing.assert_close(fresh.lambdas, loss.lambdas)
    fresh.eval()
    before = fresh.lambdas.clone()
    a = _aldr_step(fresh, logits * 0.5, targets, ids)
    assert torch.equal(fresh.lambdas, before)
    loss.train()
    b = _aldr_step(loss, logits * 0.5, targets, ids)
    torch.testing.assert_close(a, b)  # same stored state, same value; only training writes
    assert not torch.equal(loss.lambdas, before)
    # the state travels inside a stack's state_dict too
    stack = xent_core.stack("cross-entropy + aldr-kl(num_samples=12)")
    assert any(k.endswith("lambdas") for k in stack.state_dict())
