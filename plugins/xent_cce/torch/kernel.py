"""The ``cce-torch`` kernel: chunked linear cross-entropy in pure PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.autograd.function import once_differentiable

from xent_core import validate

from ..semantics import (
    LinearCEOptions,
    LogitMap,
    as_options,
    reduce_tokens,
    token_losses,
    token_weights,
)
from .chunked import LinearGrads, SoftmaxStats, compute_dtype, softmax_stats
from .grads import fused_fits, fused_loss_and_grad, softmax_grad


@dataclass(frozen=True)
class _Plan:
    """How this kernel instance chunks the work (not an option of the loss)."""

    chunk_elements: int
    filter_block: int
    grad_enabled: bool = True


def _cast(grad: torch.Tensor | None, like: torch.Tensor | None) -> torch.Tensor | None:
    if grad is None or like is None:
        return None
    return grad if grad.dtype == like.dtype else grad.to(like.dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    """Loss and per-token lse; gradients formed in forward when the reduction allows it.

    With ``mean``/``sum`` the weight of every token is known in forward, so the gradients are
    accumulated chunk by chunk during the forward sweep (three ``N*V*D`` matmuls in all) and
    backward only scales them by the incoming scalar. With ``none`` (per-token upstream
    gradients) backward recomputes the logits from the saved lse (four matmuls in all).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        opts: LinearCEOptions,
        plan: _Plan,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, v = hidden.shape[0], classifier.shape[0]
        valid = targets != opts.ignore_index
        filter_eps = opts.filter_for(hidden.dtype)
        n_valid = int(valid.sum())
        rows = None if n_valid == n else valid.nonzero().squeeze(1)
        # needs_input_grad ignores the grad mode: under torch.no_grad() / inference_mode no
        # backward can follow, so forming the gradients in forward would be wasted work
        need = (
            plan.grad_enabled and bool(ctx.needs_input_grad[0]),
            plan.grad_enabled and bool(ctx.needs_input_grad[1]),
            plan.grad_enabled and bool(ctx.needs_input_grad[2]) and bias is not None,
        )
        ctx.grads = None
        stats: SoftmaxStats
        if n_valid == 0:
            f = compute_dtype(hidden, classifier, bias)
            zeros = torch.zeros(n, dtype=f, device=hidden.device)
            stats = SoftmaxStats(zeros, zeros, zeros)
        elif fused_fits(n_valid, v, plan.chunk_elements) and (
            opts.reduction != "none" or not any(need)
        ):
            w = token_weights(valid, opts.reduction, compute_dtype(hidden, classifier, bias))
            stats, grads = fused_loss_and_grad(
                hidden,
                classifier,
                bias,
                targets,
                w,
                lmap=opts,
                label_smoothing=opts.label_smoothing,
                z_loss=opts.z_loss,
                need=need,
                filter_eps=filter_eps,
                filter_block=plan.filter_block,
                rows=rows,
                chunk_elements=plan.chunk_elements,
            )
            if any(need):
                ctx.grads = LinearGrads(
                    _cast(grads.hidden, hidden),
                    _cast(grads.classifier, classifier),
                    _cast(grads.bias, bias),
                )
        else:
            stats = softmax_stats(
                hidden,
                classifier,
                bias,
                lmap=opts,
                targets=targets,
                logit_sum=opts.label_smoothing > 0,
                rows=rows,
                chunk_elements=plan.chunk_elements,
            )
        assert stats.target_logit is not None
        per_token = token_losses(
            stats.lse,
            stats.target_logit,
            stats.logit_sum,
            valid,
            vocab=v,
            label_smoothing=opts.label_smoothing,
            z_loss=opts.z_loss,
        )
        loss = reduce_tokens(per_token, valid, opts.reduction)
        lse = stats.lse
        ctx.save_for_backward(hidden, classifier, bias, targets, lse)
        ctx.opts, ctx.plan, ctx.rows, ctx.valid = opts, plan, rows, valid
        ctx.mark_non_differentiable(lse)
        return loss, lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_lse: Any) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, classifier, bias, targets, lse = ctx.saved_tensors
        opts: LinearCEOptions = ctx.opts
        plan: _Plan = ctx.plan
        grads: LinearGrads | None = ctx.grads
        ctx.grads = None  # drop our references so autograd can take the buffers without a copy
        if grads is not None:
            g = grad_loss.to(torch.float64 if lse.dtype == torch.float64 else torch.float32)
            for t in (grads.hidden, grads.classifier, grads.bias):
                if t is not None:
                    t.mul_(g.to(t.dtype))
            return grads.hidden, grads.classifier, grads.bias, None, None, None
        need = (
            bool(ctx.needs_input_grad[0]),
            bool(ctx.needs_input_grad[1]),
            bool(ctx.needs_input_grad[2]) and bias is not None,
        )
        valid = ctx.valid
        if ctx.rows is not None and ctx.rows.numel() == 0:
            return (
                torch.zeros_like(hidden) if need[0] else None,
                torch.zeros_like(classifier) if need[1] else None,
                torch.zeros_like(bias) if need[2] else None,
                None,
                None,
                None,
            )
        f = lse.dtype
        w = token_weights(valid, opts.reduction, f) * grad_loss.to(f)
        a = w * (1.0 + 2.0 * opts.z_loss * lse) if opts.z_loss else w
        eps = opts.label_smoothing
        out = softmax_grad(
            hidden,
            classifier,
            bias,
            lse,
            softmax_weight=a,
            targets=targets,
            target_weight=w * (1.0 - eps),
            uniform_weight=w * (eps / classifier.shape[0]) if eps else None,
            lmap=opts,
            need=need,
            filter_eps=opts.filter_for(hidden.dtype),
            filter_block=plan.filter_block,
            rows=ctx.rows,
            chunk_elements=plan.chunk_elements,
        )
        return (
            _cast(out.hidden, hidden),
            _cast(out.classifier, classifier),
            _cast(out.bias, bias),
            None,
            None,
            None,
        )


class _LogSumExp(torch.autograd.Function):
    """Per-token log-sum-exp of the logits; backward recomputes chunks from the saved lse."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None,
        lmap: LogitMap,
        chunk_elements: int,
    ) -> torch.Tensor:
        lse = softmax_stats(hidden, classifier, bias, lmap=lmap, chunk_elements=chunk_elements).lse
        ctx.save_for_backward(hidden, classifier, bias, lse)
        ctx.lmap, ctx.chunk_elements = lmap, chunk_elements
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_lse: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, classifier, bias, lse = ctx.saved_tensors
        need = (
            bool(ctx.needs_input_grad[0]),
            bool(ctx.needs_input_grad[1]),
            bool(ctx.needs_input_grad[2]) and bias is not None,
        )
        out = softmax_grad(
            hidden,
            classifier,
            bias,
            lse,
            softmax_weight=grad_lse.to(lse.dtype),
            lmap=ctx.lmap,
            need=need,
            chunk_elements=ctx.chunk_elements,
        )
        return (
            _cast(out.hidden, hidden),
            _cast(out.classifier, classifier),
            _cast(out.bias, bias),
            None,
            None,
        )


class CCETorchKernel:
    """Chunked linear cross-entropy in pure PyTorch: O(chunk) memory, no N x V logits.

    Logits ``z = softcap * tanh(logit_scale * (hidden @ classifier.T + bias) / softcap)`` (no
    tanh without softcap) are formed a chunk of tokens at a time (whole vocabulary rows while
    ``V * 16 <= chunk_elements``, otherwise vocabulary blocks with an online log-sum-exp). Per
    non-ignored token ``l = lse - (1 - eps) z_y - (eps / V) sum_j z_j + z_loss * lse^2``.
    With ``mean``/``sum`` and gradients required, the softmax of each chunk is turned into the
    gradients of hidden, classifier and bias right away (three N*V*D matmuls in all, as many as
    materialising the logits), and backward only scales them; with ``none`` backward recomputes
    the logits from the saved lse. Vocabulary blocks whose softmax entries are all below
    ``filter_eps`` are left out of the gradient matmuls. fp16/bf16 inputs are computed in fp32
    (the classifier is upcast once); float64 stays float64.

    Args:
        chunk_elements: logits elements per chunk (2^24: one 64 MiB fp32 buffer, a second one
            under softcap). Larger chunks mean fewer passes over the classifier and its
            gradient, so they run faster; memory grows linearly.
        filter_block: vocabulary columns per gradient-filtering block.

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009.
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    takes_options: ClassVar[bool] = True  # see xent_cce.semantics.run_kernel
    capabilities = {
        "differentiable": True,
        "devices": ("cpu", "cuda"),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
    }

    def __init__(self, chunk_elements: int = 16777216, filter_block: int = 1024) -> None:
        self.chunk_elements = validate.integer("chunk_elements", chunk_elements, low=1)
        self.filter_block = validate.integer("filter_block", filter_block, low=1)

    def available(self) -> tuple[bool, str]:
        """Always available: it needs nothing but PyTorch."""
        return True, f"pure PyTorch {torch.__version__}"

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
        """``(loss, lse)``: the reduced loss (fp32) and the per-token lse (N,), detached.

        Options: ``options=`` (a :class:`~xent_cce.semantics.LinearCEOptions`) or its fields as
        keywords (``ignore_index``, ``reduction``, ``softcap``, ``logit_scale``,
        ``label_smoothing``, ``z_loss``, ``filter_eps``, ``return_lse``). ``lse`` is 0 at
        ignored tokens (they are skipped entirely); it costs nothing here, and
        ``return_lse=False`` only returns ``None`` in its place.
        """
        opts = as_options(options, params)
        plan = _Plan(self.chunk_elements, self.filter_block, torch.is_grad_enabled())
        loss, lse = _LinearCrossEntropy.apply(hidden, classifier, bias, targets, opts, plan)
        return loss, (lse if opts.return_lse else None)

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Per-token ``logsumexp_j z_ij`` (N,), differentiable, chunked (fp32; fp64 for fp64)."""
        lmap = LogitMap(logit_scale, softcap)
        return _LogSumExp.apply(hidden, classifier, bias, lmap, self.chunk_elements)

    def token_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Entropy in nats of each token's softmax, ``lse - sum_j p_j z_j`` (N,), no grad."""
        lmap = LogitMap(logit_scale, softcap)
        stats = softmax_stats(
            hidden, classifier, bias, lmap=lmap, entropy=True, chunk_elements=self.chunk_elements
        )
        assert stats.entropy is not None
        return stats.entropy

    def logprob_moments(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        **params: Any,
    ) -> Any:
        """Per-token ``(logp_target, entropy, var_logp)``: the ``logprob-moments`` kernel."""
        from .moments import logprob_moments

        return logprob_moments(
            hidden, classifier, targets, bias, chunk_elements=self.chunk_elements, **params
        )
