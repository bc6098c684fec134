"""Distillation from hidden states: the GKD loss without (tokens x vocab) logits.

Three levels, each usable alone:

- :func:`distill_loss`: hand loops holding student and teacher hidden states and head weights;
  any stack of ``linear-jsd`` / ``linear-kd`` / ``linear-cross-entropy``.
- :func:`topk_distill_loss`: a teacher given as top-k log-probabilities (a served teacher); the
  registry's ``jsd`` on the k classes plus one bucket for the rest, which needs only the student's
  log-partition (chunked by ``cce-torch``) and its k gathered logits.
- :func:`model_distill_loss`: two transformers causal LMs (possibly DDP/FSDP wrapped); both run
  their own forward, the wrapped one included, with the output head swapped for that call so the
  hidden states reach the loss and no logits are formed.

``gkd_loss_spec(beta)`` is the spec that equals TRL's ``GKDTrainer`` loss: TRL uses the raw
``JSD_beta`` (``linear-jsd(beta=b, normalize=False)``) for 0 < beta < 1 and the KL divergences
at the end points, which ``linear-jsd(beta=0)`` / ``linear-jsd(beta=1)`` are (normalised).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch

import xent_core
from xent_core import BadInputError, BadParameterError
from xent_core.base_loss import call_loss, loss_inputs
from xent_core.stack import LossStack, normalize_stack_spec

from . import heads
from .patching import IGNORE_INDEX, PatchError, family_of, output_head

STUDENT = ("hidden", "classifier", "bias")
TEACHER = ("teacher_hidden", "teacher_classifier", "teacher_bias")
INPUTS = (*STUDENT, *TEACHER, "targets", "num_items")


def gkd_loss_spec(beta: float = 0.5) -> str:
    """The xent spec equal to TRL's ``GKDTrainer.generalized_jsd_loss`` at this ``beta``."""
    beta = xent_core.validate.unit_interval("beta", beta)
    if beta in (0.0, 1.0):
        return f"linear-jsd(beta={beta})"
    return f"linear-jsd(beta={beta!r}, normalize=False)"


def _terms(loss: Any, softcap: float | None) -> list[tuple[str, torch.nn.Module, float]]:
    pairs: list[tuple[str, torch.nn.Module, float]] = []
    if isinstance(loss, torch.nn.Module):
        if isinstance(loss, LossStack):
            pairs = [
                (n, m, loss.weight_at(i))
                for i, (n, m) in enumerate(zip(loss.term_names, loss.terms))
            ]
        else:
            pairs = [(type(loss).__name__, loss, 1.0)]
        for name, module, _ in pairs:
            have = getattr(module, "softcap", None)
            if (have is None) != (softcap is None) or (
                have is not None and not math.isclose(have, softcap or 0.0)
            ):
                raise BadParameterError(
                    f"loss term {name!r} has softcap={have!r}, the models soft-cap at {softcap!r}"
                )
    elif isinstance(loss, (str, Mapping, list, tuple)):
        for item in normalize_stack_spec(loss):
            name, params = item["name"], dict(item["params"])
            for key in ("softcap", "logit_scale", "shift"):
                if key in params:
                    raise BadParameterError(
                        f"term {name!r}: {key} is set from the model configs; do not pass it"
                    )
            if softcap is not None:
                params["softcap"] = softcap
            pairs.append((name, xent_core.loss(name, **params), float(item["weight"])))
    else:
        raise BadParameterError(f"loss must be a spec string or a loss module, got {type(loss)}")
    for name, module, _ in pairs:
        required, _ = loss_inputs(module)
        if not set(required) <= set(INPUTS) or "hidden" not in required:
            raise BadParameterError(
                f"loss term {name!r} needs {', '.join(required)}; distillation from hidden "
                f"states provides {', '.join(INPUTS)} (use linear-jsd, linear-kd, "
                "linear-cross-entropy)"
            )
        if getattr(module, "shift", False) or getattr(module, "reduction", "mean") != "mean":
            raise BadParameterError(
                f"loss term {name!r} must have shift=False and reduction='mean' (the inputs are "
                "shifted here, as TRL does)"
            )
    return pairs


def distill_loss(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_classifier: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    loss: Any = None,
    bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    num_items: Any = None,
    shift: bool = True,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
) -> torch.Tensor:
    """A distillation loss stack on student and teacher hidden states, no logits formed.

    Args:
        hidden: student hidden states (B, T, D) (or (N, D) with ``shift=False``).
        classifier: student head weight (V, D).
        teacher_hidden: teacher hidden states, same leading shape, (..., D_t).
        teacher_classifier: teacher head weight (V, D_t).
        labels: ids whose ``-100`` positions are left out (and the CE targets), or None.
        loss: spec or module (default :func:`gkd_loss_spec` at beta 0.5: TRL's GKD loss).
        bias: student head bias (V,) or None.
        teacher_bias: teacher head bias (V,) or None.
        num_items: denominator of the mean (valid tokens of the whole accumulated batch).
        shift: next-token alignment: position t against label t+1, the last position dropped.
        softcap: logit soft-cap of both models (injected into every term), or None.
        logit_scale: multiplies the student logits (folded into ``hidden``).
        teacher_logit_scale: multiplies the teacher logits (folded into ``teacher_hidden``).
    """
    pairs = _terms(gkd_loss_spec() if loss is None else loss, softcap)
    if shift:
        if hidden.ndim != 3 or teacher_hidden.ndim != 3:
            raise BadInputError("shift=True needs (batch, time, dim) hidden states")
        hidden, teacher_hidden = hidden[:, :-1], teacher_hidden[:, :-1]
        labels = None if labels is None else labels[:, 1:]
    if teacher_hidden.shape[:-1] != hidden.shape[:-1]:
        raise BadInputError(
            f"student hidden {tuple(hidden.shape)} and teacher hidden "
            f"{tuple(teacher_hidden.shape)} cover different positions"
        )
    if labels is not None and labels.shape != hidden.shape[:-1]:
        raise BadInputError(
            f"labels {tuple(labels.shape)} do not match hidden {tuple(hidden.shape)}"
        )
    h = hidden.reshape(-1, hidden.shape[-1])
    th = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).detach()
    if logit_scale != 1.0:
        h, bias = h * logit_scale, None if bias is None else bias * logit_scale
    if teacher_logit_scale != 1.0:
        th = th * teacher_logit_scale
        teacher_bias = None if teacher_bias is None else teacher_bias * teacher_logit_scale
    inputs: dict[str, Any] = {
        "hidden": h,
        "classifier": classifier,
        "teacher_hidden": th.to(h.dtype) if th.dtype != h.dtype else th,
        "teacher_classifier": teacher_classifier.detach().to(classifier.dtype),
        "bias": bias,
        "teacher_bias": None if teacher_bias is None else teacher_bias.detach(),
    }
    if labels is not None:
        inputs["targets"] = labels.reshape(-1).to(h.device)
    total: torch.Tensor | None = None
    for name, module, weight in pairs:
        required, optional = loss_inputs(module)
        missing = [r for r in required if inputs.get(r) is None]
        if missing:
            raise BadInputError(f"loss term {name!r} needs {', '.join(missing)}")
        given = {k: v for k, v in inputs.items() if v is not None and k in (*required, *optional)}
        factor = None
        if num_items is not None:
            if "num_items" in optional:
                given["num_items"] = num_items
            else:
                t = inputs.get("targets")
                count = (t != IGNORE_INDEX).sum() if t is not None else torch.tensor(h.shape[0])
                factor = count.to(h.device) / torch.as_tensor(num_items, device=h.device)
        value = call_loss(module, given)
        value = value[0] if isinstance(value, (tuple, list)) else value
        if factor is not None:
            value = value * factor
        total = value * weight if total is None else total + value * weight
    assert total is not None
    return total


def topk_distill_loss(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    beta: float = 0.5,
    normalize: bool = True,
    bias: torch.Tensor | None = None,
    num_items: Any = None,
    shift: bool = True,
    softcap: float | None = None,
    logit_scale: float = 1.0,
) -> torch.Tensor:
    """JSD_beta against a top-k teacher (the k classes plus a bucket), no student logits formed.

    The student's cells are its log-probabilities of the k ids (``z_i - lse``, ``lse`` from the
    chunked ``cce-torch`` log-sum-exp, differentiable) and the log of its remaining mass; the
    registry's ``jsd`` (``tail="bucket"`` semantics, temperature 1) compares them with the
    teacher's k log-probabilities plus its tail ``log(1 - sum_k p_k)``.

    Args:
        hidden: student hidden states (B, T, D) (or (N, D) with ``shift=False``).
        classifier: student head weight (V, D).
        teacher_topk_ids: (B, T, k) int64 class ids, aligned with ``hidden`` before the shift.
        teacher_topk_logprobs: (B, T, k) teacher log-probabilities of those ids.
        labels: ids whose ``-100`` positions are left out, or None.
        beta: JSD weight in [0, 1]; 0 is KL(teacher || student), 1 the reverse.
        normalize: divide by beta (1 - beta) (``jsd``'s default); False is TRL's raw JSD_beta.
        bias: student head bias (V,) or None.
        num_items: denominator of the mean (valid tokens of the whole accumulated batch).
        shift: next-token alignment, as in :func:`distill_loss`.
        softcap: student logit soft-cap, or None.
        logit_scale: multiplies the student logits.
    """
    if shift:
        hidden = hidden[:, :-1]
        teacher_topk_ids, teacher_topk_logprobs = (
            teacher_topk_ids[:, :-1],
            teacher_topk_logprobs[:, :-1],
        )
        labels = None if labels is None else labels[:, 1:]
    k = teacher_topk_ids.shape[-1]
    h = hidden.reshape(-1, hidden.shape[-1])
    ids = teacher_topk_ids.reshape(-1, k).to(h.device)
    tlp = teacher_topk_logprobs.reshape(-1, k).to(h.device).double()
    if ids.shape[0] != h.shape[0]:
        raise BadInputError(
            f"teacher_topk_ids {tuple(teacher_topk_ids.shape)} do not match hidden {tuple(hidden.shape)}"
        )
    kernel = xent_core.kernel("cce-torch")
    lse = kernel.logsumexp(h, classifier, bias, softcap=softcap, logit_scale=logit_scale)
    z = torch.einsum("nd,nkd->nk", h, classifier[ids]).to(lse.dtype)
    if bias is not None:
        z = z + bias[ids].to(lse.dtype)
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    student = z - lse[:, None]
    floor = torch.tensor(-100.0, dtype=torch.float64, device=h.device)

    def with_tail(logp: torch.Tensor) -> torch.Tensor:
        mass = torch.logsumexp(logp.double(), dim=-1).clamp(max=0.0)
        tail = torch.log(-torch.expm1(mass)).clamp(min=floor)  # log(1 - sum_k p_k)
        return torch.cat([logp.double(), tail[:, None]], dim=-1)

    jsd = xent_core.loss("jsd", beta=beta, normalize=normalize)
    inputs: dict[str, Any] = {"logits": with_tail(student), "teacher_logits": with_tail(tlp)}
    if labels is not None:
        inputs["targets"] = torch.where(
            labels.reshape(-1).to(h.device) == IGNORE_INDEX, IGNORE_INDEX, 0
        )
    if num_items is not None:
        inputs["num_items"] = num_items
    return call_loss(jsd, inputs).to(h.dtype if h.dtype == torch.float64 else torch.float32)


def unwrap(model: Any) -> Any:
    """The transformers model inside DDP/FSDP/accelerate/PEFT wrappers (``.module``, ...)."""
    seen = 0
    while seen < 8:
        if hasattr(model, "get_output_embeddings") and hasattr(model, "config"):
            return model
        inner = getattr(model, "module", None) or getattr(model, "base_model", None)
        if inner is None or inner is model:
            break
        model, seen = inner, seen + 1
    raise PatchError(f"cannot find a transformers causal LM inside {type(model).__name__}")


@contextlib.contextmanager
def head_swapped(model: Any, fn: Any) -> Iterator[torch.nn.Module]:
    """Within the block, ``model``'s output head calls ``fn(hidden)`` instead of projecting."""
    head = output_head(model)
    saved = head.__dict__.get("forward")
    head.forward = fn
    try:
        yield head
    finally:
        if saved is None:
            del head.forward
        else:
            head.forward = saved


def model_distill_loss(
    student: Any,
    teacher: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    loss: Any = None,
    num_items: Any = None,
) -> torch.Tensor:
    """:func:`distill_loss` between two causal LMs, each run through its own (wrapped) forward.

    The teacher runs under ``no_grad``; the student's loss is computed inside its forward (so
    FSDP's gathered head weight is the one used). Head transforms come from each config; the
    two soft-caps must agree.
    """
    s_model, t_model = unwrap(student), unwrap(teacher)
    s_head, t_head = (heads.read_head_transform(m.config) for m in (s_model, t_model))
    if s_head.softcap != t_head.softcap:
        raise BadParameterError(
            f"student ({family_of(s_model)}: {s_head.describe()}) and teacher "
            f"({family_of(t_model)}: {t_head.describe()}) soft-cap differently; linear-jsd "
            "applies one softcap to both"
        )
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    got: dict[str, Any] = {}

    def teacher_capture(h: torch.Tensor) -> torch.Tensor:
        got["teacher"] = h.detach()
        return h.new_empty((*h.shape[:-1], 0))

    with torch.no_grad(), head_swapped(t_model, teacher_capture) as th:
        teacher(**kwargs)
        t_weight = th.weight.detach()
        t_bias = None if getattr(th, "bias", None) is None else th.bias.detach()
    if "teacher" not in got:
        raise PatchError(f"{family_of(t_model)}: the teacher's forward never used its head")

    def student_capture(h: torch.Tensor) -> torch.Tensor:
        head = output_head(s_model)
        got["loss"] = distill_loss(
            h, head.weight, got["teacher"], t_weight, labels,
            loss=loss, bias=getattr(head, "bias", None), teacher_bias=t_bias,
            num_items=num_items, softcap=s_head.softcap,
            logit_scale=s_head.logit_scale, teacher_logit_scale=t_head.logit_scale,
        )  # fmt: skip
        return h.new_empty((*h.shape[:-1], 0))

    with head_swapped(s_model, student_capture):
        student(**kwargs)
    if "loss" not in got:
        raise PatchError(f"{family_of(s_model)}: the student's forward never used its head")
    return got["loss"]
