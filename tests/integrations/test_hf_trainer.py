"""A patched model in a plain transformers.Trainer: same logged losses as the native model."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch
from hf_tiny import VOCAB, tiny_model
from xent_integrations.hf import terms

from xent_core.integrations import transformers as xhf


class RaggedRows(torch.utils.data.Dataset):
    """Rows whose number of valid labels varies from 1 to 13, so micro-batches weigh differently."""

    def __init__(self, n: int = 8, length: int = 14) -> None:
        gen = torch.Generator().manual_seed(7)
        self.ids = torch.randint(3, VOCAB, (n, length), generator=gen)
        self.valid = [1, 13, 4, 9, 2, 12, 6, 3][:n]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        labels = self.ids[i].clone()
        labels[1 + self.valid[i] :] = -100
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(labels),
            "labels": labels,
        }


def train(model, tmp_path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=2,
        logging_steps=1,
        learning_rate=0.05,
        optim="sgd",
        lr_scheduler_type="constant",
        report_to=[],
        use_cpu=True,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=RaggedRows())
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_trainer_with_gradient_accumulation_logs_the_native_losses(tmp_path, monkeypatch):
    calls = []
    real = terms.compute
    monkeypatch.setattr(terms, "compute", lambda *a, **k: calls.append(a[5]) or real(*a, **k))
    from xent_integrations.hf import patching

    monkeypatch.setattr(patching, "compute", terms.compute)
    want, want_params = train(tiny_model("llama").train(), tmp_path / "native")
    assert not calls
    got, got_params = train(xhf.patch(tiny_model("llama")).train(), tmp_path / "xent")
    assert len(calls) == 4 and all(c is not None for c in calls)  # num_items_in_batch each time
    assert len(want) == len(got) == 2
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=0)
    for name, p in want_params.items():
        torch.testing.assert_close(got_params[name], p, rtol=1e-4, atol=1e-5)
