"""Estimators on the training batch's final hidden states, taken by a forward hook.

Shared by the transformers and Lightning ``EstimatorCallback``: a hook on the module that
returns the final hidden states (the decoder of a causal LM) keeps up to ``max_rows`` of them
(detached, non-padding rows only) on the steps that are due; no extra forward is run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import xent_core
from xent_core import BadInputError, BadParameterError, validate


def _hidden_of(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is None and isinstance(output, (tuple, list)) and output:
        hidden = output[0]
    return hidden if isinstance(hidden, torch.Tensor) else None


def key_of(name: str) -> str:
    """The log key of an estimator: ``xent/<canonical name>``."""
    return f"xent/{name}"


class HiddenStateEstimates:
    """Collect final hidden states through a forward hook and run named estimators on them.

    Args:
        estimators: estimator names (``"rankme"``, ``"token-entropy"``, ...).
        every_n_steps: run on optimiser steps ``0, n, 2n, ...``.
        max_rows: the most hidden-state rows (tokens) kept per measured step.
    """

    def __init__(self, estimators: Sequence[str], every_n_steps: int, max_rows: int) -> None:
        if isinstance(estimators, str) or not estimators:
            raise BadParameterError("estimators must be a non-empty list of estimator names")
        self.every_n_steps = validate.integer("every_n_steps", every_n_steps, low=1)
        self.max_rows = validate.integer("max_rows", max_rows, low=2)
        self.names = [xent_core.info(n, "estimator").name for n in estimators]
        self.estimators = {n: xent_core.estimator(n) for n in self.names}
        self.armed = False
        self.rows: list[torch.Tensor] = []
        self.entropy_sum, self.entropy_count = 0.0, 0
        self.classifier: Callable[[], Any] | None = None
        self.handle: Any = None

    def due(self, step: int) -> bool:
        """Whether optimiser step ``step`` (0-based) is measured."""
        return step % self.every_n_steps == 0

    def attach(
        self,
        module: torch.nn.Module,
        classifier: Callable[[], Any] | None = None,
        **entropy: Any,
    ) -> None:
        """Hook ``module`` (whose output, or its first element, is the final hidden states).

        ``classifier`` returns the output embedding (V, D) at call time; token-entropy needs it
        (with ``softcap`` / ``logit_scale``), and is computed inside the hook, with the weights
        of that forward.
        """
        self.detach()
        if "token-entropy" in self.estimators:
            if classifier is None:
                raise BadInputError("token-entropy needs the model's output embeddings")
            self.estimators["token-entropy"] = xent_core.estimator("token-entropy", **entropy)
        self.classifier = classifier
        self.handle = module.register_forward_hook(self._hook, with_kwargs=True)

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _hook(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if not (self.armed and module.training):
            return
        room = self.max_rows - sum(len(r) for r in self.rows)
        hidden = _hidden_of(output)
        if room <= 0 or hidden is None:
            return
        h = hidden.detach()
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.shape == h.shape[:-1]:
            h = h[mask.bool()]
        rows = h.reshape(-1, h.shape[-1])[:room]
        self.rows.append(rows.float())
        if "token-entropy" in self.estimators and self.classifier is not None:
            weight = self.classifier().detach()
            with torch.no_grad():
                ent, _ = self.estimators["token-entropy"].per_token(  # type: ignore[attr-defined]
                    hidden=rows, classifier=weight.to(rows.dtype)
                )
            self.entropy_sum += float(ent.double().sum())
            self.entropy_count += ent.numel()

    def compute(self) -> dict[str, float]:
        """The estimates over the collected rows (then cleared), keyed by :func:`key_of`."""
        rows, self.rows = self.rows, []
        total, count = self.entropy_sum, self.entropy_count
        self.entropy_sum, self.entropy_count = 0.0, 0
        if not rows:
            return {}
        z = torch.cat(rows)
        out: dict[str, float] = {}
        for name, est in self.estimators.items():
            value = total / count if name == "token-entropy" else est(z)
            out[key_of(name)] = float(value)
        return out
