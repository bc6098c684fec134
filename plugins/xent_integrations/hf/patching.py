"""``patch`` / ``unpatch`` / ``patched``: a causal LM's loss computed by xent, per instance.

The patched ``forward`` runs the model's own forward with ``labels=None`` while the output head
(``get_output_embeddings()``, looked up at every call) is swapped, for that one call, for a
function that receives the head's input: the last hidden states, already sliced by
``logits_to_keep``. There the xent loss is computed from ``hidden`` and the head's weight, so no
(tokens x vocab) logit matrix is formed, and the head returns an empty tensor. Everything else
(backbone, MoE router, caches) is the family's own code; nothing is copied per family and no class
is modified. ``labels=None`` runs the original forward untouched.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, XentError

from . import heads
from .stats import head_stats
from .terms import Term, compute, resolve_terms

# families whose patch is checked against the native forward by the test suite; others are
# verified at patch time when verify="auto"
TESTED_FAMILIES = frozenset(
    {
        "llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3_text",
        "cohere", "granite", "mixtral", "qwen3_moe",
    }
)  # fmt: skip
_ATTR = "_xent_patch"
IGNORE_INDEX = -100


class PatchError(XentError):
    """The patch cannot drive this model, or it does not reproduce the model's own loss."""


@dataclass
class PatchState:
    """What :func:`patch` installed on one model instance."""

    loss: Any
    terms: list[Term]
    head: heads.HeadTransform
    family: str
    stats: bool
    previous_forward: Any  # the instance-level forward that was there before, or None
    wrapper: Any = None  # the patched forward
    active: int = 0  # > 0 while the patched forward runs
    guard: Any = None  # hook handle on the backbone (see _guard)


def family_of(model: Any) -> str:
    """The ``model_type`` of the model's text config (``"llama"``, ``"gemma3_text"``, ...)."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return str(getattr(text, "model_type", type(model).__name__))


def output_head(model: Any) -> torch.nn.Module:
    """The model's output head, checked to be a plain linear map the patch can drive."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if not isinstance(head, torch.nn.Module) or not isinstance(weight, torch.Tensor):
        raise PatchError(
            f"{family_of(model)}: get_output_embeddings() returned {type(head).__name__}, not a "
            "linear head with a weight; cannot patch"
        )
    extra = sorted({n for n, _ in head.named_parameters()} - {"weight", "bias"})
    if weight.ndim != 2 or extra:
        raise PatchError(
            f"{family_of(model)}: the output head {type(head).__name__} is not a plain linear "
            f"map (weight {tuple(weight.shape)}, other parameters {extra}); cannot patch it "
            "(merge adapters on lm_head first)"
        )
    return head


def check_causal_lm(model: Any) -> None:
    """Raise :class:`PatchError` unless ``model`` is a transformers causal LM the patch drives."""
    from transformers import PreTrainedModel
    from transformers.loss.loss_utils import ForCausalLMLoss
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not isinstance(model, PreTrainedModel):
        raise PatchError(
            f"xhf.patch needs a transformers PreTrainedModel (a *ForCausalLM), got "
            f"{type(model).__name__}; patch the model before wrapping it (PEFT, DDP, FSDP)"
        )
    name = type(model).__name__
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if not (name.endswith("ForCausalLM") or name in causal) or getattr(
        model.config, "is_encoder_decoder", False
    ):
        raise PatchError(f"{name} is not a decoder-only causal LM; xhf.patch drives only those")
    if model.loss_function is not ForCausalLMLoss:
        raise PatchError(
            f"{name}: model.loss_function is {getattr(model.loss_function, '__name__', '?')}, "
            "not transformers' causal-LM loss; the patch would silently replace it"
        )
    output_head(model)


def _targets(labels: Any, shift_labels: Any) -> torch.Tensor:
    if shift_labels is not None:
        return shift_labels
    return torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def _loss_call(model: Any, state: PatchState, original: Any, bound: inspect.BoundArguments) -> Any:
    args = bound.arguments
    varkw = next(
        (p.name for p in bound.signature.parameters.values() if p.kind == p.VAR_KEYWORD), None
    )
    extra = dict(args.get(varkw, {})) if varkw else {}
    return_dict = extra.pop("return_dict", None)
    labels = args.get("labels")
    targets = _targets(labels, extra.get("shift_labels"))
    num_items = extra.get("num_items_in_batch")
    if varkw:
        args[varkw] = extra
    args["labels"] = None
    if varkw:
        args[varkw]["return_dict"] = True
    head = output_head(model)
    found: dict[str, Any] = {}

    def capture(hidden: torch.Tensor) -> torch.Tensor:
        if "loss" in found:
            raise PatchError(
                f"{state.family}: the output head ran twice in one forward; cannot patch"
            )
        weight, bias = head.weight, getattr(head, "bias", None)
        flat = hidden.reshape(-1, hidden.shape[-1])
        tgt = targets.reshape(-1).to(hidden.device)
        if tgt.numel() != flat.shape[0]:
            raise BadInputError(
                f"labels give {tgt.numel()} targets for {flat.shape[0]} positions of the output "
                "head (logits_to_keep slices the positions; labels must match them)"
            )
        found["loss"] = compute(
            state.terms, flat, weight, bias, tgt, num_items, state.head.logit_scale
        )
        if state.stats:
            found["stats"] = head_stats(
                flat.detach(), weight.detach(), None if bias is None else bias.detach(), tgt,
                logit_scale=state.head.logit_scale, softcap=state.head.softcap,
            )  # fmt: skip
        return hidden.new_empty((*hidden.shape[:-1], 0))

    saved = head.__dict__.get("forward")
    head.forward = capture
    try:
        out = original(*bound.args, **bound.kwargs)
    finally:
        if saved is None:
            del head.forward
        else:
            head.forward = saved
    if "loss" not in found:
        raise PatchError(
            f"{state.family}: the forward never called get_output_embeddings(); cannot patch"
        )
    loss = found["loss"]
    aux = getattr(out, "aux_loss", None)
    if aux is not None:
        coef = getattr(model, "router_aux_loss_coef", None)
        if coef is None:
            coef = getattr(model.config.get_text_config(), "router_aux_loss_coef", None)
        if coef is None:
            raise PatchError(f"{state.family}: aux_loss without router_aux_loss_coef")
        loss = loss + coef * aux.to(loss.device)
    fields = {k: v for k, v in out.items() if k not in ("loss", "logits")}
    result = type(out)(loss=loss, **fields)
    if "stats" in found:
        s = found["stats"]
        # keys, not bare attributes: accelerate's output conversion keeps only the keys
        result["num_tokens"], result["entropy"], result["accuracy"] = (
            s.num_tokens,
            s.entropy,
            s.accuracy,
        )
    if return_dict is None:
        return_dict = getattr(model.config, "return_dict", True)
    return result if return_dict else result.to_tuple()


def _make_forward(model: Any, state: PatchState, original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return original(*args, **kwargs)  # let the model's own forward report it
        has_shift = "shift_labels" in kwargs and kwargs["shift_labels"] is not None
        if bound.arguments.get("labels") is None and not has_shift:
            return original(*args, **kwargs)
        return _loss_call(model, state, original, bound)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        state.active += 1
        try:
            return forward(*args, **kwargs)
        finally:
            state.active -= 1

    counted.__xent_patch__ = state  # type: ignore[attr-defined]
    return counted


def _backbone(model: Any) -> Any:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return decoder if isinstance(decoder, torch.nn.Module) else model.base_model


def _install_guard(model: Any, state: PatchState) -> None:
    """Raise when the backbone trains through a forward that replaced the patched one.

    TRL's ``SFTTrainer`` (fused LM head) and Liger's patches replace ``model.forward`` after
    ``xhf.patch``; without this check xent's loss would silently never run.
    """

    def guard(module: Any, args: Any) -> None:
        if (
            state.active == 0
            and model.training
            and torch.is_grad_enabled()
            and model.__dict__.get("forward") is not state.wrapper
        ):
            raise PatchError(
                f"{state.family}: model.forward was replaced after xhf.patch (TRL's SFTTrainer "
                "installs its own fused LM head), so xent's loss would not run; use "
                "xhf.XentSFTMixin / xhf.sft_trainer_class() or drop the patch"
            )

    state.guard = _backbone(model).register_forward_pre_hook(guard)


def is_patched(model: Any) -> bool:
    """Whether :func:`patch` is installed on this instance."""
    return isinstance(getattr(model, "__dict__", {}).get(_ATTR), PatchState)


def patch(
    model: Any,
    loss: Any = "linear-cross-entropy",
    *,
    verify: bool | str = "auto",
    stats: bool = True,
) -> Any:
    """Make ``model`` (one ``*ForCausalLM`` instance) compute its loss with xent; returns it.

    Args:
        model: a transformers causal LM (any family; not a PEFT/DDP wrapper).
        loss: a linear loss or stack spec string (the head's softcap/scale are injected) or a
            loss module that agrees with the model's head transform.
        verify: ``"auto"`` checks loss and every gradient against the native forward on a tiny
            batch for families outside :data:`TESTED_FAMILIES`; ``True`` always; ``False`` never.
        stats: also return ``num_tokens``, ``entropy`` and ``accuracy`` (one extra no-grad pass).
    """
    if verify not in (True, False, "auto"):
        raise BadParameterError(f"verify must be True, False or 'auto', got {verify!r}")
    if not isinstance(stats, bool):
        raise BadParameterError(f"stats must be True or False, got {stats!r}")
    check_causal_lm(model)
    if is_patched(model):
        unpatch(model)
    head = heads.read_head_transform(model.config)
    terms = resolve_terms(loss, head)
    family = family_of(model)
    previous = model.__dict__.get("forward")
    state = PatchState(loss, terms, head, family, stats, previous)
    original = model.forward  # bound method (or the instance-level forward already there)
    model.__dict__[_ATTR] = state
    state.wrapper = _make_forward(model, state, original)
    model.forward = state.wrapper
    _install_guard(model, state)
    if verify is True or (verify == "auto" and family not in TESTED_FAMILIES):
        from .verify import verify_patch

        try:
            verify_patch(model)
        except BaseException:
            unpatch(model)
            raise
    return model


def unpatch(model: Any) -> Any:
    """Restore the forward that was there before :func:`patch`; returns ``model``."""
    state = model.__dict__.pop(_ATTR, None)
    if not isinstance(state, PatchState):
        raise BadParameterError(f"{type(model).__name__} is not patched by xent")
    if state.guard is not None:
        state.guard.remove()
    if model.__dict__.get("forward") is not state.wrapper:
        raise PatchError(
            f"{state.family}: model.forward was replaced after xhf.patch; cannot restore it"
        )
    if state.previous_forward is None:
        del model.forward
    else:
        model.forward = state.previous_forward
    return model


@contextlib.contextmanager
def patched(model: Any, loss: Any = "linear-cross-entropy", **options: Any) -> Iterator[Any]:
    """``with patched(model, loss=...) as m:`` patches for the block and restores after it."""
    patch(model, loss, **options)
    try:
        yield model
    finally:
        if is_patched(model):
            unpatch(model)
