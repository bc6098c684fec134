"""What every linear cross-entropy kernel agrees on: options, per-token loss, reductions.

With logits ``z`` (see :mod:`xent_cce.torch.chunked`), ``lse_i = logsumexp_j z_ij``, label smoothing
``eps`` and z-loss weight ``lambda``, the loss of a non-ignored token is

    l_i = lse_i - (1 - eps) z_i,y_i - (eps / V) sum_j z_ij + lambda lse_i^2

(PyTorch's label smoothing; PaLM's z-loss). ``mean`` averages over non-ignored tokens (or divides
the sum by ``num_items`` when given), ``sum`` adds them, ``none`` returns ``l`` per token with 0 at
ignored positions; with every token ignored the loss is 0.

:class:`LinearCEOptions` is the one record of these options: validated once when it is built
(:mod:`xent_core.validate`), then handed unchanged from the loss to a kernel and its autograd
function. :class:`LinearCEKernel` is the protocol every kernel implements.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch

from xent_core import BadParameterError, validate

REDUCTIONS = validate.REDUCTIONS
#: ``filter_eps="auto"`` = machine epsilon of the input dtype / 32 (2^-12 for bf16).
AUTO_FILTER_DIVISOR = 32


def check_filter_eps(value: object) -> float | str | None:
    """``"auto"``, a number >= 0 or None (the raw option; see :func:`resolve_filter_eps`)."""
    if value is None or value == "auto":
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        raise BadParameterError(f"filter_eps must be 'auto', a number >= 0 or None, got {value!r}")
    return validate.nonnegative("filter_eps", value)


def resolve_filter_eps(value: float | str | None, dtype: torch.dtype) -> float:
    """``"auto"`` -> ``finfo(dtype).eps / 32``; ``None`` -> 0.0 (exact, no filtering)."""
    value = check_filter_eps(value)
    if value is None:
        return 0.0
    if value == "auto":
        return torch.finfo(dtype).eps / AUTO_FILTER_DIVISOR
    return float(value)


@dataclass(frozen=True)
class LogitMap:
    """How raw scores ``h . w + b`` become logits: ``z = c * tanh(s * raw / c)``.

    ``s = logit_scale`` (> 0), ``c = softcap`` (> 0, or None for no tanh). Validated on creation.
    """

    logit_scale: float = 1.0
    softcap: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "logit_scale", validate.positive("logit_scale", self.logit_scale))
        object.__setattr__(
            self, "softcap", validate.optional(validate.positive, "softcap", self.softcap)
        )


@dataclass(frozen=True)
class LinearCEOptions(LogitMap):
    """Every option of one linear cross-entropy call besides the tensors (validated on creation).

    Attributes:
        logit_scale: multiplies the logits before the softcap (> 0).
        softcap: Gemma 2 soft-capping value, or None.
        ignore_index: target id that contributes nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: ``eps`` in [0, 1] (PyTorch's definition).
        z_loss: PaLM's ``lambda`` (>= 0).
        filter_eps: gradient filtering threshold: ``"auto"``, a number >= 0 or None (exact).
        return_lse: whether the caller needs the per-token log-sum-exp.
    """

    ignore_index: int = -100
    reduction: str = "mean"
    label_smoothing: float = 0.0
    z_loss: float = 0.0
    filter_eps: float | str | None = None
    return_lse: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        checked = {
            "ignore_index": validate.integer("ignore_index", self.ignore_index),
            "reduction": validate.reduction(self.reduction),
            "label_smoothing": validate.unit_interval("label_smoothing", self.label_smoothing),
            "z_loss": validate.nonnegative("z_loss", self.z_loss),
            "filter_eps": check_filter_eps(self.filter_eps),
            "return_lse": validate.flag("return_lse", self.return_lse),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def filter_for(self, dtype: torch.dtype) -> float:
        """The filtering threshold for inputs of ``dtype`` (0.0: exact)."""
        return resolve_filter_eps(self.filter_eps, dtype)


_OPTION_NAMES = frozenset(f.name for f in fields(LinearCEOptions))


def as_options(options: LinearCEOptions | None, params: dict[str, Any]) -> LinearCEOptions:
    """The options of a kernel call: the record given, or one built (and checked) from keywords."""
    if options is not None:
        if params:
            raise BadParameterError(
                f"pass either options= or keyword options, not both (got {sorted(params)})"
            )
        if not isinstance(options, LinearCEOptions):
            raise BadParameterError(
                f"options must be a LinearCEOptions, got {type(options).__name__}"
            )
        return options
    unknown = sorted(set(params) - _OPTION_NAMES)
    if unknown:
        raise BadParameterError(
            f"unknown linear cross-entropy option(s) {unknown}; valid: {sorted(_OPTION_NAMES)}"
        )
    return LinearCEOptions(**params)


@runtime_checkable
class LinearCEKernel(Protocol):
    """What ``linear-cross-entropy`` needs from a kernel (every ``xent_cce`` kernel has it).

    ``takes_options`` is True for kernels whose ``linear_cross_entropy`` accepts ``options=``
    (see :func:`run_kernel`). ``linear_cross_entropy`` takes flat ``hidden`` (N, D), ``classifier`` (V, D), ``targets``
    (N,) int64 and ``bias`` (V,) or None, and either ``options=`` (a checked
    :class:`LinearCEOptions`) or the same options as keywords. It returns ``(loss, lse)``: the
    reduced loss (fp32; fp64 for fp64 inputs) and the per-token log-sum-exp (N,), detached, or
    None when ``options.return_lse`` is false.
    """

    takes_options: bool

    def available(self) -> tuple[bool, str]: ...

    def linear_cross_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        options: LinearCEOptions | None = None,
        **params: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor: ...


def run_kernel(
    kernel: Any,
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    options: LinearCEOptions,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``kernel.linear_cross_entropy`` with ``options``.

    Kernels that declare ``takes_options = True`` (every ``xent_cce`` kernel) get the checked
    record; any other object with a ``linear_cross_entropy`` method (a user's own local kernel)
    gets the options as keywords, as before the record existed.
    """
    if getattr(kernel, "takes_options", False):
        return kernel.linear_cross_entropy(hidden, classifier, targets, bias, options=options)
    kwargs = {f: getattr(options, f) for f in _KEYWORD_OPTIONS}
    loss, lse = kernel.linear_cross_entropy(hidden, classifier, targets, bias, **kwargs)
    return loss, (lse if options.return_lse else None)


_KEYWORD_OPTIONS = (
    "ignore_index",
    "reduction",
    "softcap",
    "logit_scale",
    "label_smoothing",
    "z_loss",
    "filter_eps",
)


# ------------------------------------------------------------------------------ the formula
def token_losses(
    lse: torch.Tensor,
    target_logit: torch.Tensor,
    logit_sum: torch.Tensor | None,
    valid: torch.Tensor,
    *,
    vocab: int | torch.Tensor,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> torch.Tensor:
    """Per-token loss ``l_i`` (N,), 0 at ignored tokens (differentiable in its inputs)."""
    loss = lse - (1.0 - label_smoothing) * target_logit
    if label_smoothing:
        if logit_sum is None:
            raise ValueError("label smoothing needs the per-token sum of logits")
        loss = loss - (label_smoothing / vocab) * logit_sum
    if z_loss:
        loss = loss + z_loss * lse.square()
    return torch.where(valid, loss, torch.zeros_like(loss))


def mean_denominator(
    valid: torch.Tensor, dtype: torch.dtype, num_items: Any = None
) -> torch.Tensor:
    """What ``mean`` divides by: the non-ignored count, or ``num_items``; at least 1 (0 -> 1)."""
    if num_items is None:
        return valid.sum().clamp_min(1).to(dtype)
    denom = torch.as_tensor(num_items, dtype=dtype, device=valid.device).reshape(())
    return torch.where(denom > 0, denom, torch.ones_like(denom))


def token_weights(
    valid: torch.Tensor, reduction: str, dtype: torch.dtype, num_items: Any = None
) -> torch.Tensor:
    """d(reduced loss) / d(l_i): ``1/denominator`` (mean) or 1 at valid tokens, else 0."""
    w = valid.to(dtype)
    if reduction == "mean":
        w = w / mean_denominator(valid, dtype, num_items)
    return w


def reduce_tokens(
    per_token: torch.Tensor, valid: torch.Tensor, reduction: str, num_items: Any = None
) -> torch.Tensor:
    """Apply ``reduction``; ``per_token`` is already 0 at ignored tokens.

    ``num_items`` replaces the non-ignored count as the ``mean`` denominator. A one-element
    ``per_token`` that already holds a sum is reduced the same way.
    """
    if reduction == "none":
        return per_token
    total = per_token.sum()
    if reduction == "sum":
        return total
    return total / mean_denominator(valid, total.dtype, num_items)


def z_loss_term(
    lse: torch.Tensor,
    valid: torch.Tensor,
    z_loss: float,
    reduction: str,
    num_items: Any = None,
) -> torch.Tensor:
    """The z-loss part alone, ``lambda * lse^2`` reduced like the loss (detached)."""
    lse = lse.detach()
    per_token = torch.where(valid, z_loss * lse.square(), torch.zeros_like(lse))
    return reduce_tokens(per_token.float(), valid, reduction, num_items)
