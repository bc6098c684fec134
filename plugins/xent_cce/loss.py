"""The ``linear-cross-entropy`` loss: cross-entropy of a linear head without (N, V) logits."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadParameterError
from xent_core.base_loss import Loss

from .distributed import is_dtensor, module_forward, uses_distributed_path
from .inputs import prepare_inputs
from .selection import accepts_return_lse, auto_kernel, create_kernel, require_available
from .semantics import REDUCTIONS, z_loss_term


def _check_params(
    reduction: str,
    softcap: float | None,
    logit_scale: float,
    label_smoothing: float,
    z_loss: float,
    filter_eps: float | str | None,
    impl: str,
) -> None:
    if reduction not in REDUCTIONS:
        raise BadParameterError(
            f"linear-cross-entropy: reduction must be one of {', '.join(REDUCTIONS)}, "
            f"got {reduction!r}"
        )
    if softcap is not None and not (math.isfinite(softcap) and softcap > 0):
        raise BadParameterError(
            f"linear-cross-entropy: softcap must be a positive number or None, got {softcap!r}"
        )
    if not (math.isfinite(logit_scale) and logit_scale > 0):
        raise BadParameterError(
            f"linear-cross-entropy: logit_scale must be a positive number, got {logit_scale!r}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise BadParameterError(
            f"linear-cross-entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}"
        )
    if not (math.isfinite(z_loss) and z_loss >= 0):
        raise BadParameterError(
            f"linear-cross-entropy: z_loss must be a number >= 0, got {z_loss!r}"
        )
    if isinstance(filter_eps, str):
        if filter_eps != "auto":
            raise BadParameterError(
                f"linear-cross-entropy: filter_eps must be 'auto', a number >= 0 or None, "
                f"got {filter_eps!r}"
            )
    elif filter_eps is not None and not (math.isfinite(filter_eps) and filter_eps >= 0):
        raise BadParameterError(
            f"linear-cross-entropy: filter_eps must be 'auto', a number >= 0 or None, "
            f"got {filter_eps!r}"
        )
    if not isinstance(impl, str) or not impl.strip():
        raise BadParameterError(
            f"linear-cross-entropy: impl must be 'auto' or a kernel name, got {impl!r}"
        )


class LinearCrossEntropy(Loss):
    """Cross-entropy of a linear head (hidden @ classifier.T) without materialising the logits.

    Logits ``z = softcap * tanh(logit_scale * (hidden @ classifier.T + bias) / softcap)``
    (no tanh without ``softcap``: Gemma 2's logit soft-capping). With ``lse = logsumexp(z)``,
    label smoothing ``eps`` and z-loss weight ``lambda``, each non-ignored token costs

        l = lse - (1 - eps) z_y - (eps / V) sum_j z_j + lambda lse^2

    ``mean`` averages over non-ignored tokens, ``sum`` adds them, ``none`` returns one value per
    token (0 at ignored ones); with every token ignored the loss and its gradients are 0. The
    z-loss part alone is kept in :attr:`last_z_loss` (detached, same reduction) after each call.

    Inputs: ``hidden`` (N, D) or (B, T, D), ``classifier`` (V, D), ``targets`` (N,) or (B, T)
    integer ids, optional ``bias`` (V,). fp32, fp16 and bf16 inputs (same dtype for hidden,
    classifier and bias) are accumulated in fp32; the loss is fp32 (fp64 for fp64 inputs).

    Parameters:
        ignore_index: target value that contributes nothing (-100).
        reduction: ``"mean"`` (over non-ignored tokens), ``"sum"`` or ``"none"``.
        softcap: Gemma 2 soft-capping value, or None.
        logit_scale: multiplies the logits before the softcap (e.g. 1/temperature).
        label_smoothing: ``eps`` in [0, 1] (PyTorch's definition).
        z_loss: PaLM's ``lambda`` (1e-4 in PaLM); included in the loss and reported apart.
        shift: next-token prediction: position t is scored against ``targets[..., t+1]`` and
            the last position is ignored; only the targets are shifted, hidden is not copied.
        return_lse: return ``(loss, lse)`` with the per-token log-sum-exp (detached, shaped
            like ``targets``, 0 at ignored tokens) for logging or a separate z-loss.
        filter_eps: skip gradient blocks whose softmax entries are all below it: ``"auto"``
            (input dtype's epsilon / 32), a number, or None (exact).
        impl: ``"auto"`` (``cce-triton`` on CUDA when available, else ``cce-torch``), or a
            kernel name such as ``"cce-torch"``, ``"naive"``, ``"torch-native(chunked=True)"``.
        check_inputs: check target range and finite hidden (two device synchronisations).
        vocab_parallel: a ``torch.distributed`` process group whose ranks each hold a contiguous
            shard of the classifier rows (Megatron-style); the loss is then exact over the
            global vocabulary without any rank holding the full classifier or logits (see
            docs/distributed.md). None (default) is single-device.
        vocab_start: first global row index of this rank's classifier shard (with
            ``vocab_parallel``; ``xent_cce.distributed.shard_classifier`` computes it).

    Optional input ``num_items``: the denominator of ``mean`` (e.g. the valid-token count of the
    whole accumulated or data-parallel batch, ``xent_cce.distributed.global_num_items``), so
    micro-batch and per-rank losses add up to the one-big-batch loss.

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009; Gemma Team, "Gemma 2: Improving Open Language Models at a Practical
    Size", arXiv:2408.00118; Chowdhery et al., "PaLM: Scaling Language Modeling with
    Pathways", arXiv:2204.02311; Szegedy et al., "Rethinking the Inception Architecture for
    Computer Vision", arXiv:1512.00567.
    """

    citation = (
        ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009"),
        ("Gemma 2: Improving Open Language Models at a Practical Size", "arXiv:2408.00118"),
        ("PaLM: Scaling Language Modeling with Pathways", "arXiv:2204.02311"),
        ("Rethinking the Inception Architecture for Computer Vision", "arXiv:1512.00567"),
    )
    capabilities = {
        "differentiable": True,
        "devices": ("cpu", "cuda"),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
    }

    def __init__(
        self,
        ignore_index: int = -100,
        reduction: str = "mean",
        softcap: float | None = None,
        logit_scale: float = 1.0,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        shift: bool = False,
        return_lse: bool = False,
        filter_eps: float | str | None = "auto",
        impl: str = "auto",
        check_inputs: bool = True,
        vocab_parallel: Any = None,
        vocab_start: int | None = None,
    ) -> None:
        super().__init__()
        _check_params(
            reduction, softcap, float(logit_scale), float(label_smoothing), float(z_loss),
            filter_eps, impl,
        )  # fmt: skip
        self.ignore_index = int(ignore_index)
        self.reduction = reduction
        self.softcap = None if softcap is None else float(softcap)
        self.logit_scale = float(logit_scale)
        self.label_smoothing = float(label_smoothing)
        self.z_loss = float(z_loss)
        self.shift = bool(shift)
        self.return_lse = bool(return_lse)
        self.filter_eps = filter_eps
        self.impl = impl.strip()
        self.check_inputs = bool(check_inputs)
        self.vocab_parallel = vocab_parallel
        self.vocab_start = None if vocab_start is None else int(vocab_start)
        self.last_z_loss: torch.Tensor | None = None
        self.last_impl: str | None = None
        self._kernels: dict[str, tuple[str, Any]] = {}
        if self.impl != "auto":
            create_kernel(self.impl)  # an unknown name fails here, not at the first batch

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, impl={self.impl!r}, softcap={self.softcap}, "
            f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss}, shift={self.shift}"
        )

    def kernel_for(self, device: torch.device) -> tuple[str, Any]:
        """``(name, kernel)`` used for inputs on ``device`` (cached per device type)."""
        key = device.type
        if key not in self._kernels:
            if self.impl == "auto":
                self._kernels[key] = auto_kernel(key)
            else:
                kernel = require_available(create_kernel(self.impl), self.impl)
                self._kernels[key] = (self.impl, kernel)
        return self._kernels[key]

    def forward(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        num_items: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if uses_distributed_path(
            hidden, classifier, bias, vocab_parallel=self.vocab_parallel, num_items=num_items
        ):
            if self.vocab_parallel is None and not is_dtensor(hidden, classifier, bias, targets):
                # plain tensors with num_items: the same checks (dtypes, finite hidden) as below
                prepare_inputs(
                    hidden,
                    classifier,
                    targets,
                    bias,
                    ignore_index=self.ignore_index,
                    check_values=self.check_inputs,
                )
            return module_forward(self, hidden, classifier, targets, bias, num_items=num_items)
        flat = prepare_inputs(
            hidden,
            classifier,
            targets,
            bias,
            ignore_index=self.ignore_index,
            shift=self.shift,
            check_values=self.check_inputs,
        )
        name, kernel = self.kernel_for(flat.hidden.device)
        self.last_impl = name
        need_lse = self.return_lse or self.z_loss > 0
        extra = {"return_lse": need_lse} if accepts_return_lse(kernel) else {}
        loss, lse = kernel.linear_cross_entropy(
            flat.hidden,
            flat.classifier,
            flat.targets,
            flat.bias,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            softcap=self.softcap,
            logit_scale=self.logit_scale,
            label_smoothing=self.label_smoothing,
            z_loss=self.z_loss,
            filter_eps=self.filter_eps,
            **extra,
        )
        valid = flat.targets != self.ignore_index
        if self.z_loss > 0 and lse is not None:
            self.last_z_loss = z_loss_term(lse, valid, self.z_loss, self.reduction)
        else:
            self.last_z_loss = torch.zeros((), device=loss.device)
        if self.reduction == "none":
            loss = loss.reshape(flat.lead_shape)
            self.last_z_loss = self.last_z_loss.expand(flat.targets.shape).reshape(flat.lead_shape)
        if not self.return_lse:
            return loss
        assert lse is not None
        lse = torch.where(valid, lse.detach(), torch.zeros_like(lse)).reshape(flat.lead_shape)
        return loss, lse
