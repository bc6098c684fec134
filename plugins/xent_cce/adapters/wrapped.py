"""Common ground of the kernels that wrap another implementation (PyTorch's own, peers).

A wrapped implementation is called with ``reduction="sum"`` (or ``"none"``) and xent divides by
the number of non-ignored tokens itself, so every kernel gives 0, not NaN, when all tokens are
ignored. ``logit_scale`` is applied to the hidden states and bias before the call
(``s * (h . w + b) = (s h) . w + s b``). Options the wrapped code lacks raise
:class:`~xent_core.BadParameterError` naming the kernels that have them. ``lse`` is not something
the wrapped code returns: when asked for it, it is computed by one extra chunked pass (no grad).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch

from xent_core import BadParameterError, NotAvailableError

from ..semantics import LinearCEOptions, as_options, reduce_tokens
from ..torch.chunked import softmax_stats

if TYPE_CHECKING:
    from typing_extensions import Unpack


class WrappedCall(TypedDict):
    """The options :meth:`WrappedKernel._call` gets as keywords (validated, availability checked)."""

    ignore_index: int
    reduction: str  # "sum" or "none": xent reduces itself
    softcap: float | None
    label_smoothing: float
    z_loss: float
    filter_eps: float | str | None


class WrappedKernel:
    """Base of kernels that call an outside implementation of linear cross-entropy."""

    kernel_name: ClassVar[str] = "wrapped"
    takes_options: ClassVar[bool] = True  # see xent_cce.semantics.run_kernel
    #: options the wrapped code supports, among bias, softcap, label_smoothing, z_loss, none
    supports: ClassVar[frozenset[str]] = frozenset()

    def _unsupported(self, option: str) -> BadParameterError:
        return BadParameterError(
            f"kernel {self.kernel_name!r} does not support {option}; "
            "use impl='cce-torch' (or 'cce-triton' on CUDA) which supports every option"
        )

    def _check(self, bias: torch.Tensor | None, opts: LinearCEOptions) -> None:
        wanted = {
            "bias": bias is not None,
            "softcap": opts.softcap is not None,
            "label_smoothing": bool(opts.label_smoothing),
            "z_loss": bool(opts.z_loss),
            "none": opts.reduction == "none",
        }
        for option, used in wanted.items():
            if used and option not in self.supports:
                name = "reduction='none'" if option == "none" else option
                raise self._unsupported(name)

    def available(self) -> tuple[bool, str]:
        """``(True, description)`` or ``(False, reason)``."""
        raise NotImplementedError

    def _call(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None,
        **kw: Unpack[WrappedCall],
    ) -> torch.Tensor:
        """The wrapped call with the options of :class:`WrappedCall` (reduction "sum" or "none")."""
        raise NotImplementedError

    def linear_cross_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        options: LinearCEOptions | None = None,
        **params: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(loss, lse)``; ``lse`` costs one extra chunked pass (``return_lse=False`` skips it).

        The loss is float32, or float64 for float64 inputs (the wrapped code may compute in
        float32 then: the value is returned as float64 with that accuracy).
        """
        opts = as_options(options, params)
        self._check(bias, opts)
        h, b = hidden, bias
        if opts.logit_scale != 1.0:
            h = hidden * opts.logit_scale
            b = None if bias is None else bias * opts.logit_scale
        # fp16/bf16: per-token values, summed here in fp32 (a half-precision sum over the batch
        # overflows past 65504, e.g. with label smoothing)
        low = hidden.dtype in (torch.float16, torch.bfloat16) and "none" in self.supports
        ok, reason = self.available()
        if not ok:
            raise NotAvailableError(f"kernel {self.kernel_name!r} is not available: {reason}")
        out = self._call(
            h,
            classifier,
            targets,
            b,
            ignore_index=opts.ignore_index,
            reduction="none" if opts.reduction == "none" or low else "sum",
            softcap=opts.softcap,
            label_smoothing=opts.label_smoothing,
            z_loss=opts.z_loss,
            filter_eps=opts.filter_eps,
        )
        # fp32 loss, fp64 for fp64 inputs (as every kernel)
        out = out.to(torch.float64 if hidden.dtype == torch.float64 else torch.float32)
        valid = targets != opts.ignore_index
        if opts.reduction == "none":
            out = torch.where(valid, out, torch.zeros_like(out))
        else:  # a sum (one element) or fp16/bf16 per-token values: xent's reduction
            out = reduce_tokens(out.reshape(-1), valid, opts.reduction)
        lse = None
        if opts.return_lse:
            lse = softmax_stats(hidden.detach(), classifier.detach(), _detach(bias), lmap=opts).lse
        return out, lse

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Per-token log-sum-exp (N,), differentiable: xent's chunked PyTorch primitive."""
        from ..torch.kernel import CCETorchKernel

        return CCETorchKernel().logsumexp(
            hidden, classifier, bias, softcap=softcap, logit_scale=logit_scale
        )

    def token_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Entropy in nats of each token's softmax (N,): xent's chunked PyTorch primitive."""
        from ..torch.kernel import CCETorchKernel

        return CCETorchKernel().token_entropy(
            hidden, classifier, bias, softcap=softcap, logit_scale=logit_scale
        )


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()
