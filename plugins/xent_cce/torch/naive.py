"""The ``naive`` kernel: materialise the logits, then cross-entropy. The reference and baseline."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..semantics import LinearCEOptions, as_options, reduce_tokens, z_loss_term

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def naive_logits(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
) -> torch.Tensor:
    """``softcap * tanh(logit_scale * (hidden @ classifier.T + bias) / softcap)``, (N, V).

    The matmul runs in the input dtype; fp16/bf16 logits are then upcast to fp32, as training
    code usually does (``logits.float()``).
    """
    z = F.linear(hidden, classifier, bias)
    if z.dtype in _LOW_PRECISION:
        z = z.float()
    if logit_scale != 1.0:
        z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


class NaiveKernel:
    """Materialised logits then cross-entropy: the reference and the baseline (O(N*V) memory).

    ``logits = hidden @ classifier.T + bias`` (then scale and softcap), and
    ``F.cross_entropy(logits, targets, ignore_index, label_smoothing)`` plus
    ``z_loss * logsumexp(logits)^2`` for non-ignored tokens. Reductions follow xent's rule:
    ``mean`` over non-ignored tokens, 0 (not NaN) when every token is ignored. Memory and time
    are what a user gets without a fused kernel: the (N, V) logits, their log-softmax and their
    gradient all exist at once.

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009 (the baseline it measures against).
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    takes_options: ClassVar[bool] = True  # see xent_cce.semantics.run_kernel
    capabilities = {
        "differentiable": True,
        "devices": ("cpu", "cuda"),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
    }

    def available(self) -> tuple[bool, str]:
        """Always available (memory permitting: it holds several N x V tensors)."""
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
        """``(loss, lse)``; ``filter_eps`` is accepted and ignored (the naive path is exact).

        The per-token cross-entropy is PyTorch's ``F.cross_entropy`` on the materialised logits
        (the baseline this kernel stands for); the z-loss and the reduction are xent's shared
        helpers.
        """
        o = as_options(options, params)
        z = naive_logits(hidden, classifier, bias, softcap=o.softcap, logit_scale=o.logit_scale)
        valid = targets != o.ignore_index
        per_token = F.cross_entropy(
            z,
            targets,
            ignore_index=o.ignore_index,
            reduction="none",
            label_smoothing=o.label_smoothing,
        )
        lse = None
        if o.z_loss or o.return_lse:
            lse_full = torch.logsumexp(z, dim=-1)
            if o.z_loss:
                zl = torch.where(valid, o.z_loss * lse_full.square(), torch.zeros_like(lse_full))
                per_token = per_token + zl
            lse = lse_full.detach() if o.return_lse else None
        return reduce_tokens(per_token, valid, o.reduction), lse

    def logsumexp(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Per-token log-sum-exp of the materialised logits (N,), differentiable."""
        z = naive_logits(hidden, classifier, bias, softcap=softcap, logit_scale=logit_scale)
        return torch.logsumexp(z, dim=-1)

    def token_entropy(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        softcap: float | None = None,
        logit_scale: float = 1.0,
    ) -> torch.Tensor:
        """Entropy in nats of each token's softmax (N,), from the materialised logits."""
        with torch.no_grad():
            z = naive_logits(hidden, classifier, bias, softcap=softcap, logit_scale=logit_scale)
            logp = torch.log_softmax(z, dim=-1)
            return -(logp.exp() * logp).sum(-1)


__all__ = ["NaiveKernel", "naive_logits", "z_loss_term"]
