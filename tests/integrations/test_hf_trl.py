"""TRL: SFTTrainer runs xent's loss through the mixin (or fails loudly); GKD equals TRL's loss."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")

import torch
from hf_tiny import VOCAB, batch, tiny_model
from xent_integrations.hf import patching, terms

import xent_core
from xent_core.integrations import transformers as xhf


def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(VOCAB)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="w3")),
        pad_token="w0", bos_token="w1", eos_token="w2", unk_token="w3",
    )  # fmt: skip


def sft_rows():
    from datasets import Dataset

    gen = torch.Generator().manual_seed(0)
    lengths = [5, 12, 7, 9, 3, 11, 6, 8]
    return Dataset.from_list(
        [{"input_ids": torch.randint(3, VOCAB, (n,), generator=gen).tolist()} for n in lengths]
    )


def sft(cls, model, tmp_path):
    from trl import SFTConfig

    args = SFTConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2,
        max_steps=2, logging_steps=1, learning_rate=0.05, optim="sgd",
        lr_scheduler_type="constant", report_to=[], use_cpu=True, seed=0, save_strategy="no",
        disable_tqdm=True, bf16=False,
    )  # fmt: skip
    trainer = cls(model=model, args=args, train_dataset=sft_rows(), processing_class=tokenizer())
    trainer.train()
    return [h for h in trainer.state.log_history if "loss" in h]


def test_sft_trainer_mixin_trains_with_xent_and_keeps_trl_metrics(tmp_path, monkeypatch):
    from trl import SFTTrainer

    want = sft(SFTTrainer, tiny_model("llama").train(), tmp_path / "trl")
    calls = []
    real = terms.compute
    monkeypatch.setattr(patching, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = sft(xhf.sft_trainer_class(), xhf.patch(tiny_model("llama")).train(), tmp_path / "xent")
    assert len(calls) == 4  # 2 steps x 2 micro-batches, all through xent
    for g, w in zip(got, want, strict=True):
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-5)
        assert g["entropy"] == pytest.approx(w["entropy"], rel=1e-4)
        assert g["mean_token_accuracy"] == pytest.approx(w["mean_token_accuracy"], abs=1e-6)


def test_stock_sft_trainer_never_silently_bypasses_the_patch(tmp_path):
    from trl import SFTTrainer

    with pytest.raises(xhf.PatchError, match="SFTTrainer"):
        sft(SFTTrainer, xhf.patch(tiny_model("llama")).train(), tmp_path)
    with pytest.raises(xhf.PatchError, match=r"xhf\.patch"):
        sft(xhf.sft_trainer_class(), tiny_model("llama").train(), tmp_path)


def gkd(cls, student, teacher, tmp_path, **kwargs):
    from trl.experimental.gkd import GKDConfig

    args = GKDConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=3, report_to=[], use_cpu=True,
        bf16=False, lmbda=0.0, seq_kd=False, beta=kwargs.pop("beta", 0.5), disable_dropout=True,
    )  # fmt: skip
    return cls(
        model=student, teacher_model=teacher, args=args, train_dataset=sft_rows(),
        processing_class=tokenizer(), data_collator=lambda rows: rows, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_gkd_mixin_equals_stock_gkd_per_batch(beta, tmp_path):
    from trl.experimental.gkd import GKDTrainer

    teacher = tiny_model("qwen2", seed=2, hidden_size=48, head_dim=12)
    inputs = batch(seed=6)
    nib = torch.tensor(41)
    results = []
    for cls in (GKDTrainer, xhf.gkd_trainer_class()):
        student = tiny_model("llama", seed=1).train()
        trainer = gkd(cls, student, teacher, tmp_path, beta=beta)
        loss = trainer.compute_loss(trainer.model, dict(inputs), num_items_in_batch=nib)
        loss.backward()
        grads = {n: p.grad for n, p in student.named_parameters()}
        results.append((loss.detach(), grads))
    (ref, ref_grads), (got, grads) = results
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=0)
    for name, g in ref_grads.items():
        assert (grads[name] - g).abs().max() <= 1e-4 * g.abs().max(), name


def test_gkd_stacked_with_cross_entropy_and_the_hand_loop_function(tmp_path):
    from trl.experimental.gkd import GKDTrainer

    student = tiny_model("gemma2", seed=1)
    teacher = tiny_model("gemma2", seed=2, hidden_size=48, head_dim=12)
    inputs = batch(seed=7)
    so = student(**inputs)
    with torch.no_grad():
        to = teacher(**inputs)
    labels = inputs["labels"][:, 1:]
    ref = (
        0.7
        * GKDTrainer.generalized_jsd_loss(
            so.logits[:, :-1], to.logits[:, :-1], labels=labels, beta=0.4
        )
        + 0.3 * so.loss
    )
    spec = "0.7*linear-jsd(beta=0.4, normalize=False) + 0.3*linear-cross-entropy"
    got = xhf.model_distill_loss(
        student, teacher, inputs["input_ids"], labels=inputs["labels"], loss=spec
    )
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=0)
    trainer = gkd(xhf.gkd_trainer_class(), student, teacher, tmp_path, xent_loss=spec)
    torch.testing.assert_close(trainer.compute_loss(student, dict(inputs)), ref, rtol=1e-5, atol=0)


def test_topk_teacher_equals_the_logit_level_jsd():
    student = tiny_model("llama", seed=1)
    inputs = batch(seed=8)
    hidden = {}
    hook = student.lm_head.register_forward_pre_hook(lambda m, a: hidden.setdefault("h", a[0]))
    logits = student(**inputs).logits
    hook.remove()
    teacher_logp = torch.log_softmax(
        torch.randn(*logits.shape, generator=torch.Generator().manual_seed(1)) * 3, -1
    )
    values, ids = teacher_logp.topk(17, dim=-1)
    labels = inputs["labels"]
    got = xhf.topk_distill_loss(hidden["h"], student.lm_head.weight, ids, values, labels, beta=0.3)
    ref = xent_core.loss("jsd", beta=0.3)(
        logits=logits[:, :-1].reshape(-1, VOCAB),
        teacher_topk_ids=ids[:, :-1].reshape(-1, 17),
        teacher_topk_logprobs=values[:, :-1].reshape(-1, 17),
        targets=labels[:, 1:].reshape(-1),
    )
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=0)
    assert xhf.gkd_loss_spec(0.5) == "linear-jsd(beta=0.5, normalize=False)"
    assert xhf.gkd_loss_spec(0) == "linear-jsd(beta=0.0)"
