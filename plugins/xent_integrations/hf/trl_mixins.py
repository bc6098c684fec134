"""TRL: mixins that make ``SFTTrainer`` and ``GKDTrainer`` compute their loss with xent.

TRL 1.16's ``SFTTrainer`` replaces the model's ``forward`` with its own fused LM head at
construction and trains on that, so a plain ``SFTTrainer`` never runs an ``xhf.patch``-ed loss;
the patch's guard raises at the first training step when that happens. :class:`XentSFTMixin`
(``class T(XentSFTMixin, SFTTrainer)``, or :func:`sft_trainer_class`) routes the loss through the
patched forward and keeps TRL's ``entropy`` / ``mean_token_accuracy`` metrics from the patch's
statistics. :class:`XentGKDMixin` replaces ``GKDTrainer``'s loss (full student and teacher
logits) with :func:`~xent_integrations.hf.distill.model_distill_loss`: the same value per batch.
"""

from __future__ import annotations

from typing import Any

from xent_core import BadParameterError

from .distill import gkd_loss_spec, model_distill_loss, output_head, unwrap
from .patching import PatchError, is_patched


def _gather_sum(trainer: Any, value: Any) -> Any:
    return trainer.accelerator.gather_for_metrics(value.detach().reshape(1)).sum()


class XentSFTMixin:
    """Put before ``SFTTrainer`` in the bases: the loss is the ``xhf.patch``-ed model's loss."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        model = unwrap(self.model)  # type: ignore[attr-defined]
        if not is_patched(model):
            raise PatchError(
                f"{type(self).__name__} trains with xent's loss: call xhf.patch(model, loss=...) "
                "before building the trainer"
            )
        args_ = self.args  # type: ignore[attr-defined]
        clashes = [
            name
            for name, bad in (
                ("compute_loss_func", getattr(self, "compute_loss_func", None) is not None),
                ("loss_type='dft'", getattr(args_, "loss_type", "nll") != "nll"),
                ("label_smoothing_factor", getattr(args_, "label_smoothing_factor", 0) > 0),
            )
            if bad
        ]
        if clashes:
            raise BadParameterError(
                f"{type(self).__name__}: {', '.join(clashes)} would compute the loss outside xent; "
                "put it in the patched loss spec (e.g. linear-cross-entropy(label_smoothing=0.1))"
            )

    def compute_loss(
        self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        mode = "train" if self.model.training else "eval"  # type: ignore[attr-defined]
        inputs = {**inputs, "use_cache": False}
        if getattr(self, "aux_loss_enabled", False):
            inputs["output_router_logits"] = True
        if num_items_in_batch is not None:
            inputs["num_items_in_batch"] = num_items_in_batch
        outputs = model(**inputs)  # TRL's wrapper without fused_lm_head runs the patched forward
        loss = outputs.loss
        args = self.args  # type: ignore[attr-defined]
        if args.average_tokens_across_devices and num_items_in_batch is not None:
            acc = self.accelerator  # type: ignore[attr-defined]
            tp = self.get_tp_size() if hasattr(self, "get_tp_size") else 1  # type: ignore[attr-defined]
            loss = loss * (acc.num_processes // tp)
        metrics = getattr(self, "_metrics", None)
        if metrics is not None and getattr(outputs, "num_tokens", None) is not None:
            n = outputs.num_tokens.to(loss.device).float()
            valid = _gather_sum(self, n)
            ent = _gather_sum(self, outputs.entropy.to(n.device).float() * n)
            hit = _gather_sum(self, outputs.accuracy.to(n.device).float() * n)
            metrics[mode]["entropy"].append((ent / valid).item() if valid > 0 else 0.0)
            metrics[mode]["mean_token_accuracy"].append((hit / valid).item() if valid > 0 else 0.0)
        return (loss, outputs) if return_outputs else loss


class XentGKDMixin:
    """Put before ``GKDTrainer`` in the bases: the GKD loss from hidden states, no logits.

    ``xent_loss`` (keyword or class attribute) is any stack of ``linear-jsd`` / ``linear-kd`` /
    ``linear-cross-entropy``; the default, ``gkd_loss_spec(args.beta)``, equals TRL's loss.
    """

    xent_loss: Any = None

    def __init__(self, *args: Any, xent_loss: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        if xent_loss is not None:
            self.xent_loss = xent_loss
        output_head(unwrap(self.teacher_model))  # type: ignore[attr-defined]
        output_head(unwrap(self.model))  # type: ignore[attr-defined]

    def compute_loss(
        self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        self.teacher_model.eval()  # type: ignore[attr-defined]
        spec = self.xent_loss if self.xent_loss is not None else gkd_loss_spec(self.beta)  # type: ignore[attr-defined]
        loss = model_distill_loss(
            model,
            self.teacher_model,  # type: ignore[attr-defined]
            inputs["input_ids"],
            inputs.get("attention_mask"),
            inputs["labels"],
            loss=spec,
            num_items=num_items_in_batch,
        )
        if not return_outputs:
            return loss
        from transformers.modeling_outputs import CausalLMOutputWithPast

        return loss, CausalLMOutputWithPast(loss=loss)


def sft_trainer_class() -> type:
    """``XentSFTMixin`` + TRL's ``SFTTrainer``."""
    from trl import SFTTrainer

    return type("XentSFTTrainer", (XentSFTMixin, SFTTrainer), {})


def gkd_trainer_class() -> type:
    """``XentGKDMixin`` + TRL's ``GKDTrainer``."""
    from trl.experimental.gkd import GKDTrainer

    return type("XentGKDTrainer", (XentGKDMixin, GKDTrainer), {})
