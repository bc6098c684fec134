"""The ``linear-cross-entropy`` loss: cross-entropy of a linear head without (N, V) logits."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from xent_core import BadInputError, BadParameterError, input_checks_enabled, validate
from xent_core.base_loss import Loss

from .distributed import flat_linear_cross_entropy, is_dtensor, resolve_dtensors
from .inputs import prepare_inputs
from .selection import auto_kernel, create_kernel, require_available
from .semantics import LinearCEKernel, LinearCEOptions, run_kernel, z_loss_term


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

    Args:
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
        #: the one checked record of the loss options, handed as is to the kernel
        self.options = LinearCEOptions(
            ignore_index=ignore_index,
            reduction=reduction,
            softcap=softcap,
            logit_scale=logit_scale,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            filter_eps=filter_eps,
            return_lse=return_lse,
        )
        self.shift = validate.flag("shift", shift)
        self.check_inputs = validate.flag("check_inputs", check_inputs)
        if not isinstance(impl, str) or not impl.strip():
            raise BadParameterError(
                f"linear-cross-entropy: impl must be 'auto' or a kernel name, got {impl!r}"
            )
        self.impl = impl.strip()
        self.vocab_parallel = vocab_parallel
        self.vocab_start = validate.optional(validate.integer, "vocab_start", vocab_start, low=0)
        self.last_z_loss: torch.Tensor | None = None
        self.last_impl: str | None = None
        self._kernels: dict[str, tuple[str, LinearCEKernel]] = {}
        if self.impl != "auto":
            create_kernel(self.impl)  # an unknown name fails here, not at the first batch

    # the options, readable as attributes (they live in ``self.options``)
    ignore_index = property(lambda self: self.options.ignore_index)
    reduction = property(lambda self: self.options.reduction)
    softcap = property(lambda self: self.options.softcap)
    logit_scale = property(lambda self: self.options.logit_scale)
    label_smoothing = property(lambda self: self.options.label_smoothing)
    z_loss = property(lambda self: self.options.z_loss)
    filter_eps = property(lambda self: self.options.filter_eps)
    return_lse = property(lambda self: self.options.return_lse)

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
        opts = self.options
        group, start = self.vocab_parallel, self.vocab_start
        if group is not None or num_items is not None or is_dtensor(hidden, classifier, bias):
            hidden, classifier, bias, targets, group, start = resolve_dtensors(
                hidden, classifier, bias, targets, vocab_parallel=group, vocab_start=start
            )
        check = self.check_inputs and input_checks_enabled()
        flat = prepare_inputs(
            hidden,
            classifier,
            targets,
            bias,
            ignore_index=opts.ignore_index,
            shift=self.shift,
            check_values=check,
            vocab_sharded=group is not None,
        )
        name, kernel = self.kernel_for(flat.hidden.device)
        # the kernel needs to report lse only when the z-loss part or the caller wants it
        kernel_opts = dataclasses.replace(opts, return_lse=opts.return_lse or opts.z_loss > 0)
        if group is not None or num_items is not None:
            loss, lse = flat_linear_cross_entropy(
                flat,
                kernel_opts,
                kernel=kernel,
                group=group,
                vocab_start=start,
                num_items=num_items,
                check_targets=check,
            )
            self.last_impl = f"{name} (vocab-parallel)" if group is not None else name
        else:
            loss, lse = run_kernel(
                kernel, flat.hidden, flat.classifier, flat.targets, flat.bias, kernel_opts
            )
            self.last_impl = name
        if check and not bool(torch.isfinite(loss.detach()).all()):
            raise BadInputError(
                "linear-cross-entropy: the loss is not finite although hidden, classifier and "
                "bias are: the logits overflow (|hidden @ classifier.T| is too large for "
                f"{flat.hidden.dtype}); scale the inputs down, or use softcap or logit_scale < 1"
            )
        valid = flat.targets != opts.ignore_index
        if opts.z_loss > 0 and lse is not None:
            self.last_z_loss = z_loss_term(lse, valid, opts.z_loss, opts.reduction, num_items)
        else:
            self.last_z_loss = torch.zeros((), device=loss.device)
        if opts.reduction == "none":
            loss = loss.reshape(flat.lead_shape)
            self.last_z_loss = self.last_z_loss.expand(flat.targets.shape).reshape(flat.lead_shape)
        if not opts.return_lse:
            return loss
        assert lse is not None
        lse = torch.where(valid, lse.detach(), torch.zeros_like(lse)).reshape(flat.lead_shape)
        return loss, lse
