"""The ``cce-triton`` kernel: linear cross-entropy in Triton without a tokens x vocabulary buffer."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch

from xent_core import BadInputError, NotAvailableError, validate

from ..semantics import LinearCEOptions, LogitMap, as_options, resolve_filter_eps

__all__ = ["CCETritonKernel", "resolve_filter_eps"]

_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_ACCUMULATE = ("fp32", "input")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


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

    Args:
        accumulate: ``"fp32"`` (default) accumulates fp16/bf16 gradients in fp32 (the classifier
            gradient chunk by chunk through a ~64 MiB buffer); ``"input"`` adds straight into
            buffers of the input dtype (least memory, one rounding per atomic addition).

    Runs on CUDA devices, or on the CPU in the Triton interpreter when ``TRITON_INTERPRET=1`` is
    set before triton is imported (slow; for tests). The interpreter cannot compute bfloat16 dot
    products, so bfloat16 inputs there raise :class:`~xent_core.NotAvailableError`.

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009.
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    takes_options: ClassVar[bool] = True  # see xent_cce.semantics.run_kernel
    capabilities = {
        "differentiable": True,
        "devices": ("cuda",),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
        "requires": ("triton",),
        "emulation": {
            "env": "TRITON_INTERPRET=1",
            "note": "Triton interpreter, slow; float16/float32/float64, bfloat16 refused",
        },
    }

    def __init__(self, accumulate: str = "fp32") -> None:
        self.accumulate = validate.choice("accumulate", accumulate, _ACCUMULATE)

    @property
    def _launch(self) -> Any:
        from .ops import Launch

        return Launch(accumulate=self.accumulate)

    def __repr__(self) -> str:
        return f"CCETritonKernel(accumulate={self.accumulate!r})"

    # ------------------------------------------------------------------ availability

    def available(self) -> tuple[bool, str]:
        """``(True, where it runs)`` or ``(False, why not)``."""
        try:
            import triton
        except ImportError:
            return False, "triton is not installed (pip install 'xent[triton]', Linux only)"
        if _interpreting():
            return True, (
                f"triton {triton.__version__} interpreter (TRITON_INTERPRET=1): CPU, slow; "
                "float16/float32/float64 only (no bfloat16)"
            )
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
        options: LinearCEOptions | None = None,
        **params: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, lse)``: the loss (scalar, or ``(N,)`` for ``reduction="none"``) and the
        per-token log-sum-exp ``(N,)`` (detached). The loss is fp32 (fp64 for fp64 inputs) and
        differentiable w.r.t. ``hidden``, ``classifier`` and ``bias``. Options: ``options=`` or
        the fields of :class:`~xent_cce.semantics.LinearCEOptions` as keywords."""
        self._check(hidden, classifier, bias)
        opts = as_options(options, params)
        bias = _dense(bias)
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
        from .ops import LinearCrossEntropyFunction

        loss, lse = LinearCrossEntropyFunction.apply(
            hidden, classifier, bias, targets.contiguous(), opts, self._launch
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
        self._check(hidden, classifier, bias)
        lmap = LogitMap(logit_scale, softcap)
        from .ops import LogSumExpFunction

        return LogSumExpFunction.apply(hidden, classifier, _dense(bias), lmap, self._launch)

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
        self._check(hidden, classifier, bias)
        lmap = LogitMap(logit_scale, softcap)
        bias = _dense(bias)
        from .ops import row_stats

        with torch.no_grad():
            stats = row_stats(
                hidden.detach(),
                classifier.detach(),
                bias.detach() if bias is not None else None,
                None,
                lmap,
                self._launch,
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
    ) -> None:
        ok, why = self.available()
        if not ok:
            raise NotAvailableError(f"cce-triton is not available: {why}")
        if hidden.device.type != "cuda" and not _interpreting():
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
        if hidden.dtype == torch.bfloat16 and _interpreting():
            raise NotAvailableError(
                "cce-triton: the Triton interpreter (TRITON_INTERPRET=1) cannot compute bfloat16 "
                "dot products (its results are garbage); cast the inputs to float32, or use "
                "impl='cce-torch' on the CPU"
            )


def _dense(bias: torch.Tensor | None) -> torch.Tensor | None:
    """The programs read the bias with unit stride: a strided view (a column of a larger
    parameter, ``b[::2]``) is copied, differentiably, or its values would be read wrongly."""
    return None if bias is None else bias.contiguous()
