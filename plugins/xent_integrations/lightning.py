"""``EstimatorCallback`` for Lightning: estimators on the training batch's final hidden states.

``from xent_core.integrations.lightning import EstimatorCallback``. A forward hook on the module
that returns the final hidden states (no extra forward) keeps up to ``max_rows`` rows of the
measured batches; the values go through ``pl_module.log`` (``xent/<name>``), so every logger and
``trainer.callback_metrics`` get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from xent_core import BadParameterError

from ._capture import HiddenStateEstimates, key_of

__all__ = ["EstimatorCallback", "key_of"]


def _find(root: torch.nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        if not hasattr(obj, part):
            raise BadParameterError(f"{type(root).__name__} has no attribute path {path!r}")
        obj = getattr(obj, part)
    return obj


def _causal_lm(root: torch.nn.Module) -> Any:
    for sub in root.modules():
        if callable(getattr(sub, "get_decoder", None)) and callable(
            getattr(sub, "get_output_embeddings", None)
        ):
            return sub
    return None


class EstimatorCallback(pl.Callback):
    """Log estimators of the training hidden states from a Lightning ``Trainer``.

    Args:
        estimators: estimator names, e.g. ``["rankme", "token-entropy"]``.
        every_n_steps: measure the batches of optimiser steps ``0, n, 2n, ...`` (default 1).
        max_rows: the most tokens (rows) kept per measured batch (default 2048).
        module: dotted path (from the LightningModule) of the submodule whose output is the final
            hidden states; default: the decoder of the first transformers causal LM inside.
        classifier: dotted path of the output embedding module or weight (V, D), for
            token-entropy; default: that causal LM's ``get_output_embeddings()``.
    """

    def __init__(
        self,
        estimators: Sequence[str],
        every_n_steps: int = 1,
        max_rows: int = 2048,
        module: str | None = None,
        classifier: str | None = None,
    ) -> None:
        self.capture = HiddenStateEstimates(estimators, every_n_steps, max_rows)
        self.module, self.classifier = module, classifier

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        lm = _causal_lm(pl_module)
        if self.module is not None:
            target = _find(pl_module, self.module)
        elif lm is not None:
            target = lm.get_decoder()
        else:
            raise BadParameterError(
                "no transformers causal LM found in the LightningModule: pass module= (the "
                "dotted path of the submodule that returns the final hidden states)"
            )
        getter = None
        if self.classifier is not None:
            path = self.classifier

            def getter() -> Any:
                obj = _find(pl_module, path)
                return obj.weight if isinstance(obj, torch.nn.Module) else obj

        elif lm is not None:

            def getter() -> Any:
                return lm.get_output_embeddings().weight

        entropy: dict[str, Any] = {}
        if lm is not None and getattr(lm, "config", None) is not None:
            from .hf.heads import read_head_transform  # a transformers model: it is installed

            head = read_head_transform(lm.config)
            entropy = {"softcap": head.softcap, "logit_scale": head.logit_scale}
        self.capture.attach(target, getter, **entropy)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        self.capture.armed = self.capture.due(trainer.global_step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        if not self.capture.armed:
            return
        self.capture.armed = False
        for key, value in self.capture.compute().items():
            pl_module.log(key, value, on_step=True, on_epoch=False)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.capture.detach()
