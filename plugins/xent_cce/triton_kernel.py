"""The ``cce-triton`` kernel: linear cross-entropy in Triton without a tokens x vocabulary buffer."""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, NotAvailableError

_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_REDUCTIONS = ("mean", "sum", "none")
_ACCUMULATE = ("fp32", "input")


class CCETritonKernel:
    """Cut Cross-Entropy in Triton: blocked matmul with on-chip log-sum-exp, no N x V logits.

    Logits are ``y = cap(logit_scale * (hidden @ classifier.T + bias))`` with
    ``cap(z) = softcap * tanh(z / softcap)`` when ``softcap`` is set. Per token ``n`` with target
    ``t`` (``lse_n = log sum_j exp(y_nj)``, ``eps`` = label smoothing, ``V`` classes)::

        loss_n = lse_n - (1 - eps) * y_nt - (eps / V) * sum_j y_nj + z_loss * lse_n ** 2

    and 0 for ignored tokens; ``mean`` divides the sum by the number of non-ignored tokens.

    Forward: one program per (token block, vocabulary split) walks its vocabulary blocks, forms
    each logit tile with an fp32 ``tl.dot`` loop and folds it into an online log-sum-exp kept on
    chip; the target logit (and the sum of logits) come out of the same pass. Only the
    log-sum-exp (N floats) is saved. Backward: each (token block, vocabulary block) program
    recomputes its logit tile, forms ``softmax - onehot`` (with the label-smoothing, z-loss and
    softcap terms) on the fly, scales it by the per-token upstream gradient and adds its products
    into ``d_hidden`` and ``d_classifier`` with atomics. With ``filter_eps`` a tile whose every
    gradient entry (before the upstream scale) is below ``filter_eps`` is skipped (not
    with label smoothing, whose uniform term would be dropped over most of the vocabulary).

    Parameters:
        accumulate: ``"fp32"`` (default) accumulates fp16/bf16 gradients in fp32 (the classifier
            gradient chunk by chunk through a ~64 MiB buffer); ``"input"`` adds straight into
            buffers of the input dtype (least memory, one rounding per atomic addition).

    Runs on CUDA devices, or on the CPU in the Triton interpreter when ``TRITON_INTERPRET=1`` is
    set before triton is imported (slow; for tests).

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009.
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    capabilities = {
        "differentiable": True,
        "devices": ("cuda",),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
        "requires": ("triton",),
    }

    def __init__(self, accumulate: str = "fp32") -> None:
        if accumulate not in _ACCUMULATE:
            raise BadParameterError(
                f"cce-triton: accumulate must be one of {_ACCUMULATE}, got {accumulate!r}"
            )
        self.accumulate = accumulate

    def __repr__(self) -> str:
        return f"CCETritonKernel(accumulate={self.accumulate!r})"

    # ------------------------------------------------------------------ availability

    def available(self) -> tuple[bool, str]:
        """``(True, where it runs)`` or ``(False, why not)``."""
        try:
            import triton
        except ImportError:
            return False, "triton is not installed (pip install 'xent[triton]', Linux only)"
        if os.environ.get("TRITON_INTERPRET", "0") == "1":
            return True, f"triton {triton.__version__} interpreter (TRITON_INTERPRET=1): CPU, slow"
        if not torch.cuda.is_available():
            return (
                False,
                "no CUDA device; set TRITON_INTERPRET=1 before importing triton to run the "
                "Triton interpreter on the CPU",
            )
        return True, f"triton {triton.__version__} on {torch.cuda.get_device_name()}"

    # ------------------------------------------------------------------ public primitives

    def linear_cross_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        softcap: float | None = None,
        logit_scale: float = 1.0,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        filter_eps: float | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, lse)``: the loss (scalar, or ``(N,)`` for ``reduction="none"``) and the
        per-token log-sum-exp ``(N,)`` (detached). The loss is fp32 (fp64 for fp64 inputs) and
        differentiable w.r.t. ``hidden``, ``classifier`` and ``bias``."""
        self._check(hidden, classifier, bias, softcap, logit_scale)
        bias = _dense(bias)
        if reduction not in _REDUCTIONS:
            raise BadParameterError(
                f"cce-triton: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise BadParameterError(
                f"cce-triton: label_smoothing must be in [0, 1], got {label_smoothing}"
            )
        if not (math.isfinite(float(z_loss)) and float(z_loss) >= 0.0):
            raise BadParameterError(f"cce-triton: z_loss must be >= 0, got {z_loss}")
        if targets.dim() != 1 or targets.shape[0] != hidden.shape[0]:
            raise BadInputError(
                f"cce-triton: targets must have shape ({hidden.shape[0]},) to match hidden "
                f"{tuple(hidden.shape)}, got {tuple(targets.shape)}"
            )
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise BadInputError(
                f"cce-triton: targets must hold integer class ids, got dtype {targets.dtype}"
            )
        if targets.device != hidden.device:
            raise BadInputError(
                f"cce-triton: targets are on {targets.device} but hidden is on {hidden.device}"
            )
        from ._triton_ops import LinearCrossEntropyFunction, LinearOptions

        opts = LinearOptions(
            softcap=float(softcap) if softcap else None,
            logit_scale=float(logit_scale),
            ignore_index=int(ignore_index),
            reduction=reduction,
            label_smoothing=float(label_smoothing),
            z_loss=float(z_loss),
            filter_eps=resolve_filter_eps(filter_eps, hidden.dtype),
            accumulate=self.accumulate,
        )
        loss, lse = LinearCrossEntropyFunction.apply(
            hidden, classifier, bias, targets.contiguous(), opts
        )
        return loss, lse

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Per-token ``log sum_j exp(y_nj)`` ``(N,)``, differentiable, never forming ``(N, V)``."""
        self._check(hidden, classifier, bias, softcap, logit_scale)
        bias = _dense(bias)
        from ._triton_ops import LinearOptions, LogSumExpFunction

        opts = LinearOptions(
            softcap=float(softcap) if softcap else None,
            logit_scale=float(logit_scale),
            accumulate=self.accumulate,
        )
        return LogSumExpFunction.apply(hidden, classifier, bias, opts)

    def token_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Entropy in nats of each softmax row, ``lse_n - sum_j p_nj y_nj`` ``(N,)``; no grad."""
        self._check(hidden, classifier, bias, softcap, logit_scale)
        bias = _dense(bias)
        from ._triton_ops import LinearOptions, row_stats

        opts = LinearOptions(softcap=float(softcap) if softcap else None, logit_scale=logit_scale)
        with torch.no_grad():
            stats = row_stats(
                hidden.detach(),
                classifier.detach(),
                bias.detach() if bias is not None else None,
                None,
                opts,
                want_entropy=True,
            )
        assert stats.entropy is not None
        return stats.entropy

    # ------------------------------------------------------------------ checks

    def _check(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        softcap: Any,
        logit_scale: Any,
    ) -> None:
        ok, why = self.available()
        if not ok:
            raise NotAvailableError(f"cce-triton is not available: {why}")
        if hidden.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise NotAvailableError(
                f"cce-triton runs on CUDA tensors (or in the Triton interpreter); hidden is on "
                f"{hidden.device}"
            )
        if hidden.dim() != 2 or classifier.dim() != 2:
            raise BadInputError(
                f"cce-triton: hidden must be (N, D) and classifier (V, D); got "
                f"{tuple(hidden.shape)} and {tuple(classifier.shape)}"
            )
        if hidden.shape[1] != classifier.shape[1]:
            raise BadInputError(
                f"cce-triton: hidden has D={hidden.shape[1]} but classifier has "
                f"D={classifier.shape[1]}"
            )
        if classifier.shape[0] == 0 or hidden.shape[1] == 0:
            raise BadInputError("cce-triton: the classifier must have at least one row and D >= 1")
        if hidden.dtype not in _FLOAT_TYPES:
            raise BadInputError(
                f"cce-triton: hidden must be float16, bfloat16, float32 or float64, got "
                f"{hidden.dtype}"
            )
        for name, t in (("classifier", classifier), ("bias", bias)):
            if t is None:
                continue
            if t.dtype != hidden.dtype:
                raise BadInputError(
                    f"cce-triton: {name} has dtype {t.dtype} but hidden has {hidden.dtype}; "
                    f"cast them to one dtype"
                )
            if t.device != hidden.device:
                raise BadInputError(
                    f"cce-triton: {name} is on {t.device} but hidden is on {hidden.device}"
                )
        if bias is not None and tuple(bias.shape) != (classifier.shape[0],):
            raise BadInputError(
                f"cce-triton: bias must have shape ({classifier.shape[0]},), got "
                f"{tuple(bias.shape)}"
            )
        if softcap is not None and not (math.isfinite(float(softcap)) and float(softcap) > 0):
            raise BadParameterError(f"cce-triton: softcap must be None or > 0, got {softcap}")
        if not math.isfinite(float(logit_scale)):
            raise BadParameterError(f"cce-triton: logit_scale must be finite, got {logit_scale}")


def _dense(bias: torch.Tensor | None) -> torch.Tensor | None:
    """The programs read the bias with unit stride: a strided view (a column of a larger
    parameter, ``b[::2]``) is copied, differentiably, or its values would be read wrongly."""
    return None if bias is None else bias.contiguous()


def resolve_filter_eps(filter_eps: float | str | None, dtype: torch.dtype) -> float:
    """``None`` -> 0 (exact), ``"auto"`` -> machine epsilon of ``dtype`` / 32, else the float."""
    if filter_eps is None:
        return 0.0
    if isinstance(filter_eps, str):
        if filter_eps != "auto":
            raise BadParameterError(
                f"cce-triton: filter_eps must be None, 'auto' or a float >= 0, got {filter_eps!r}"
            )
        return torch.finfo(dtype).eps / 32.0
    value = float(filter_eps)
    if not (math.isfinite(value) and value >= 0.0):
        raise BadParameterError(f"cce-triton: filter_eps must be >= 0, got {filter_eps}")
    return value
