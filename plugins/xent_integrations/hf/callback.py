"""``EstimatorCallback`` for ``transformers.Trainer``: estimators on the training hidden states.

The final hidden states come from a forward hook on the model's decoder (no extra forward).
``Trainer.log`` copies the logs into ``state.log_history`` and then calls the ``on_log`` callbacks
in order, reporting callbacks (wandb, tensorboard, ...) first; no callback event runs before that
copy. So ``EstimatorCallback.attach(trainer)`` adds the callback to the trainer and wraps that
trainer instance's ``log`` (no class is changed): the measured values are merged into the logs
before ``Trainer.log`` runs, so ``log_history`` and every ``on_log`` callback get them, whatever
the callback order. Passed only through ``Trainer(callbacks=[...])`` (no trainer reference is
available to a callback), it adds its values in ``on_log`` to the logs and the ``log_history``
entry just written: callbacks listed before it miss them, and it warns once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from xent_core import BadInputError

from .._capture import HiddenStateEstimates, key_of
from .heads import read_head_transform

__all__ = ["EstimatorCallback", "key_of"]


def _decoder(model: Any) -> Any:
    getter = getattr(model, "get_decoder", None)
    decoder = getter() if callable(getter) else None
    return decoder if decoder is not None else getattr(model, "base_model", model)


class EstimatorCallback(TrainerCallback):
    """Log estimators of the training batch's final hidden states from ``transformers.Trainer``.

    Values are logged as ``xent/<name>`` with the next training ``Trainer.log``
    (``logging_steps``). Use ``EstimatorCallback([...]).attach(trainer)`` so that
    ``log_history`` and every reporter get them.

    Args:
        estimators: estimator names, e.g. ``["rankme", "token-entropy"]``.
        every_n_steps: measure on optimiser steps ``0, n, 2n, ...`` (default 1).
        max_rows: the most tokens (rows) kept per measured step (default 2048).
    """

    def __init__(
        self, estimators: Sequence[str], every_n_steps: int = 1, max_rows: int = 2048
    ) -> None:
        self.capture = HiddenStateEstimates(estimators, every_n_steps, max_rows)
        self.pending: dict[str, float] = {}
        self.model: Any = None
        self.trainer: Any = None
        self.warned = False

    def attach(self, trainer: Any) -> Any:
        """Add the callback to ``trainer`` and merge its values into ``trainer.log``; returns it.

        Args:
            trainer: a ``transformers.Trainer`` (or subclass, e.g. TRL's trainers).
        """
        handler = getattr(trainer, "callback_handler", None)
        if handler is None or not callable(getattr(trainer, "log", None)):
            raise BadInputError(
                f"EstimatorCallback.attach needs a transformers.Trainer, got {type(trainer).__name__}"
            )
        if self.trainer is trainer:
            return trainer
        if self.trainer is not None:
            raise BadInputError("this EstimatorCallback is already attached to another trainer")
        if self not in handler.callbacks:
            trainer.add_callback(self)
        original = trainer.log

        def log(logs: dict[str, float], *args: Any, **kwargs: Any) -> Any:
            if self.pending and "loss" in logs:
                logs.update(self.pending)
                self.pending = {}
            return original(logs, *args, **kwargs)

        trainer.log = log
        self.trainer = trainer
        return trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        self.model = model
        head = read_head_transform(model.config)
        self.capture.attach(
            _decoder(model),
            lambda: model.get_output_embeddings().weight,
            softcap=head.softcap,
            logit_scale=head.logit_scale,
        )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        self.capture.armed = self.capture.due(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if not self.capture.armed:
            return
        self.capture.armed = False
        self.pending.update(self.capture.compute())

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
        # attached: the trainer's log already took the values; this is the fallback
        if not self.pending or logs is None or "loss" not in logs:
            return
        if not self.warned:
            self.warned = True
            warnings.warn(
                "EstimatorCallback passed through Trainer(callbacks=...) only: callbacks listed "
                "before it (reporters such as wandb or tensorboard) miss its values; use "
                "EstimatorCallback([...]).attach(trainer) so that every callback gets them",
                stacklevel=2,
            )
        logs.update(self.pending)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self.pending)
        self.pending = {}

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        self.capture.detach()
