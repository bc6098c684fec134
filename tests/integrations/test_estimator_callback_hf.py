"""EstimatorCallback in transformers.Trainer: values reach log_history and every reporter."""

from __future__ import annotations

import math
import warnings

import pytest

pytest.importorskip("transformers")

import numpy as np
from hf_tiny import tiny_model
from test_hf_trainer import RaggedRows

from xent_core.integrations import transformers as xhf


def _rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + eps
    return math.exp(float(-(p * np.log(p)).sum()))


def _entropy(h: np.ndarray, w: np.ndarray, softcap: float | None) -> float:
    logits = h @ w.T
    if softcap:
        logits = softcap * np.tanh(logits / softcap)
    logits = logits - logits.max(1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return float(-(p * np.log(p)).sum(1).mean())


@pytest.mark.parametrize(("family", "patch"), [("llama", True), ("gemma2", False)])
def test_callback_logs_reach_log_history_and_reporters(tmp_path, family, patch):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model = tiny_model(family).train()
    if patch:
        xhf.patch(model)
    softcap = getattr(model.config, "final_logit_softcapping", None)
    seen: list[tuple[np.ndarray, float]] = []  # every training forward: hidden rows, entropy

    def reference(module, args, kwargs, output):
        if module.training:
            h = output.last_hidden_state.detach().double()
            h = h[kwargs["attention_mask"].bool()].numpy()
            w = model.get_output_embeddings().weight.detach().double().numpy()
            seen.append((h, _entropy(h, w, softcap)))

    model.get_decoder().register_forward_hook(reference, with_kwargs=True)

    class Reporter(TrainerCallback):  # stands for wandb/tensorboard: runs before user callbacks
        logs: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs))

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=3,
        logging_steps=1,
        learning_rate=0.05,
        optim="sgd",
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    reporter = Reporter()
    cb = xhf.EstimatorCallback(["rankme", "token-entropy"], every_n_steps=2, max_rows=1000)
    trainer = Trainer(model=model, args=args, train_dataset=RaggedRows(), callbacks=[reporter])
    assert cb.attach(trainer) is trainer and cb.attach(trainer) is trainer  # idempotent
    assert sum(c is cb for c in trainer.callback_handler.callbacks) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # attached: no fallback warning
        trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    reported = [r for r in reporter.logs if "loss" in r]
    assert [h["step"] for h in history] == [1, 2, 3]
    measured = [0, 2]  # optimiser steps 0, 2 (logged at steps 1, 3), two micro-batches each
    for step in measured:
        h_rows = np.concatenate([seen[2 * step][0], seen[2 * step + 1][0]])
        n = [len(seen[2 * step + i][0]) for i in range(2)]
        ent = (seen[2 * step][1] * n[0] + seen[2 * step + 1][1] * n[1]) / sum(n)
        for logs in (history[step], reported[step]):
            assert logs["xent/rankme"] == pytest.approx(_rankme(h_rows), rel=1e-4)
            assert logs["xent/token-entropy"] == pytest.approx(ent, rel=1e-4)
    assert "xent/rankme" not in history[1] and "xent/rankme" not in reported[1]


def _trainer(tmp_path, model, callbacks, steps):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=steps,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    return Trainer(model=model, args=args, train_dataset=RaggedRows(), callbacks=callbacks)


def test_callback_without_attach_still_fills_log_history_and_warns(tmp_path):
    from transformers import TrainerCallback

    class Reporter(TrainerCallback):  # listed before the callback: cannot see its values
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs))

    model = xhf.patch(tiny_model("llama").train())
    reporter = Reporter()
    cb = xhf.EstimatorCallback(["rankme"])
    trainer = _trainer(tmp_path, model, [reporter, cb], steps=2)
    with pytest.warns(UserWarning, match="attach"):
        trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert all(h["xent/rankme"] >= 1.0 for h in history) and len(history) == 2
    assert not any("xent/rankme" in r for r in reporter.logs)


def test_attach_refuses_what_is_not_a_trainer(tmp_path):
    from xent_core import BadInputError

    cb = xhf.EstimatorCallback(["rankme"])
    with pytest.raises(BadInputError):
        cb.attach(object())
    model = xhf.patch(tiny_model("llama"))
    cb.attach(_trainer(tmp_path, model, [], steps=1))
    with pytest.raises(BadInputError, match="another trainer"):
        cb.attach(_trainer(tmp_path, model, [], steps=1))


def test_callback_checks_its_parameters():
    from xent_core import BadParameterError, UnknownComponentError

    with pytest.raises(BadParameterError):
        xhf.EstimatorCallback("rankme")
    with pytest.raises(BadParameterError):
        xhf.EstimatorCallback(["rankme"], every_n_steps=0)
    with pytest.raises(UnknownComponentError):
        xhf.EstimatorCallback(["rank-me-not"])
