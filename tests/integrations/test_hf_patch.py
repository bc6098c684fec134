"""xhf.patch against transformers' own forward, family by family (tiny random models, CPU)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch
from hf_tiny import FAMILY_EXTRAS, VOCAB, batch, loss_and_grads, tiny_model
from xent_integrations.hf import heads

import xent_core
from xent_core import BadInputError, BadParameterError
from xent_core.integrations import transformers as xhf


def native(model):
    return type(model).forward.__get__(model)


def assert_same_grads(grads, ref, rtol=1e-4):
    assert set(grads) == set(ref)
    for name, r in ref.items():
        err = (grads[name] - r).abs().max() / r.abs().max().clamp_min(1e-12)
        assert err < rtol, f"{name}: {err:.2e}"


@pytest.mark.parametrize("family", sorted(FAMILY_EXTRAS))
def test_patched_loss_and_every_gradient_match_the_native_forward(family):
    model = tiny_model(family)
    inputs = batch()
    ref, ref_grads = loss_and_grads(model, native(model), inputs)
    xhf.patch(model, verify=False)
    out, grads = loss_and_grads(model, model, inputs)
    assert out.logits is None
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=0)
    assert_same_grads(grads, ref_grads)
    if family in ("mixtral", "qwen3_moe"):
        assert ref.aux_loss is not None and ref.aux_loss > 0
        torch.testing.assert_close(out.aux_loss, ref.aux_loss)


@pytest.mark.parametrize(
    ("family", "field"),
    [("gemma2", "softcap"), ("cohere", "logit_scale"), ("granite", "logit_scale")],
)
def test_a_patch_that_drops_the_head_transform_fails_the_check(family, field, monkeypatch):
    real = heads.read_head_transform

    def broken(config):
        t = real(config)
        return heads.HeadTransform(
            1.0 if field == "logit_scale" else t.logit_scale,
            None if field == "softcap" else t.softcap,
            t.fields,
        )

    monkeypatch.setattr(heads, "read_head_transform", broken)
    model = tiny_model(family)
    with pytest.raises(xhf.PatchError, match=rf"family '{family}'.*loss"):
        xhf.patch(model, verify=True)
    assert not xhf.is_patched(model)


def test_verify_auto_checks_a_family_outside_the_tested_table(monkeypatch):
    assert "nanochat" not in xhf.TESTED_FAMILIES
    model = tiny_model("nanochat", final_logit_softcapping=0.5)
    xhf.patch(model)  # verified (and passes)
    xhf.unpatch(model)
    real = heads.read_head_transform
    monkeypatch.setattr(
        heads, "read_head_transform", lambda c: heads.HeadTransform(1.0, None, real(c).fields)
    )
    with pytest.raises(xhf.PatchError, match="nanochat"):
        xhf.patch(model)  # "auto": verified because nanochat is not in the table
    xhf.patch(model, verify=False)  # not verified: the caller asked for that


def test_hyperclovax_multiplies_by_logits_scaling_where_granite_divides():
    model = tiny_model("hyperclovax", logits_scaling=0.3)
    assert xhf.read_head_transform(model.config).logit_scale == pytest.approx(0.3)
    xhf.patch(model, verify=True)  # against the native forward


def test_num_items_in_batch_and_shift_labels_follow_transformers():
    model = tiny_model("llama")
    inputs = batch(seed=1)
    extra = {"num_items_in_batch": torch.tensor(37)}
    ref, ref_grads = loss_and_grads(model, native(model), {**inputs, **extra})
    with xhf.patched(model):
        out, grads = loss_and_grads(model, model, {**inputs, **extra})
        torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=0)
        assert_same_grads(grads, ref_grads)
        shift = torch.nn.functional.pad(inputs["labels"], (0, 1), value=-100)[:, 1:]
        plain = {k: v for k, v in inputs.items() if k != "labels"}
        out2 = model(**plain, shift_labels=shift)
        torch.testing.assert_close(
            out2.loss, ref.loss * 37 / (shift != -100).sum(), rtol=1e-5, atol=0
        )


def test_logits_to_keep_is_honoured():
    model = tiny_model("qwen2")
    inputs = batch(seed=2)
    inputs["labels"] = inputs["labels"][:, -4:]
    ref = native(model)(**inputs, logits_to_keep=4)
    with xhf.patched(model):
        torch.testing.assert_close(
            model(**inputs, logits_to_keep=4).loss, ref.loss, rtol=1e-5, atol=0
        )
        with pytest.raises(BadInputError, match="logits_to_keep"):
            model(**inputs, logits_to_keep=3)


def test_entropy_accuracy_and_token_count_match_the_logits():
    model = tiny_model("gemma2")
    inputs = batch(seed=3)
    logits = native(model)(**inputs).logits.double()
    # labels need not equal the inputs: make every other position the model's top-1 token
    hit = logits.argmax(-1)[:, :-1]
    labels = inputs["labels"]
    labels[:, 1::2] = torch.where(labels[:, 1::2] == -100, -100, hit[:, 0::2])
    targets = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
    valid = targets != -100
    logp = torch.log_softmax(logits[valid], -1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    accuracy = (logits[valid].argmax(-1) == targets[valid]).double().mean()
    with xhf.patched(model):
        out = model(**inputs)
    assert out.num_tokens.item() == valid.sum().item()
    torch.testing.assert_close(out.entropy.double(), entropy, rtol=1e-5, atol=0)
    torch.testing.assert_close(out.accuracy.double(), accuracy)
    assert 0 < accuracy < 1  # a peaked enough model for accuracy to mean something


def test_loss_specs_and_modules():
    model = tiny_model("gemma2")
    inputs = batch(seed=4)
    logits = native(model)(**inputs).logits.double()
    targets = torch.nn.functional.pad(inputs["labels"], (0, 1), value=-100)[:, 1:]
    ref = torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), targets.reshape(-1), label_smoothing=0.1
    )
    with xhf.patched(
        model,
        loss="0.5*linear-cross-entropy(label_smoothing=0.1) + 0.5*linear-cross-entropy(label_smoothing=0.1)",
    ):
        torch.testing.assert_close(model(**inputs).loss.double(), ref, rtol=1e-5, atol=0)
    good = xent_core.loss("linear-cross-entropy", softcap=0.5, label_smoothing=0.1)
    with xhf.patched(model, loss=good):
        torch.testing.assert_close(model(**inputs).loss.double(), ref, rtol=1e-5, atol=0)
    with pytest.raises(BadParameterError, match="softcap"):
        xhf.patch(model, loss=xent_core.loss("linear-cross-entropy"))
    with pytest.raises(BadParameterError, match="softcap"):
        xhf.patch(model, loss="linear-cross-entropy(softcap=3.0)")
    with pytest.raises(BadParameterError, match="teacher_hidden"):
        xhf.patch(model, loss="linear-kd")
    with pytest.raises(BadParameterError, match="shift"):
        xhf.patch(tiny_model("llama"), loss=xent_core.loss("linear-cross-entropy", shift=True))


def test_generate_and_no_label_forward_are_unchanged_and_unpatch_restores():
    model = tiny_model("llama")
    prompt = batch(seed=5, rows=2, length=5)["input_ids"]
    want = model.generate(prompt, max_new_tokens=6, do_sample=False)
    logits = model(input_ids=prompt).logits
    xhf.patch(model)
    assert "forward" in model.__dict__
    torch.testing.assert_close(model.generate(prompt, max_new_tokens=6, do_sample=False), want)
    torch.testing.assert_close(model(input_ids=prompt).logits, logits)
    other = tiny_model("llama")
    assert "forward" not in other.__dict__  # per instance: the class is untouched
    xhf.unpatch(model)
    assert "forward" not in model.__dict__ and not xhf.is_patched(model)
    assert model(**batch()).logits is not None
    with pytest.raises(BadParameterError, match="not patched"):
        xhf.unpatch(model)


def test_what_the_patch_cannot_drive_raises():
    from transformers import LlamaModel

    with pytest.raises(xhf.PatchError, match="PreTrainedModel"):
        xhf.patch(torch.nn.Linear(3, 4))
    with pytest.raises(xhf.PatchError, match="causal LM"):
        xhf.patch(LlamaModel(tiny_model("llama").config))
    model = tiny_model("llama")
    model.lm_head.extra = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(xhf.PatchError, match="plain linear"):
        xhf.patch(model)
    with pytest.raises(BadParameterError, match="verify"):
        xhf.patch(tiny_model("llama"), verify="yes")


def test_an_unknown_head_transform_field_is_an_error():
    model = tiny_model("llama", logits_soft_cap=5.0)
    with pytest.raises(BadParameterError, match="logits_soft_cap"):
        xhf.patch(model)
    model = tiny_model("llama", logits_soft_cap=None)
    xhf.patch(model)  # an inactive field is fine
