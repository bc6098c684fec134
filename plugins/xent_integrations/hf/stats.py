"""Token accuracy and entropy of the output head without an (N, V) logit matrix.

One no-grad pass over chunks of the valid tokens (a fixed element budget per chunk), so trainers
keep the metrics that used to need ``outputs.logits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHUNK_ELEMENTS = 1 << 22  # logits per chunk: 16 MiB in fp32


@dataclass
class HeadStats:
    """Per-batch ``num_tokens`` (valid targets), mean token ``entropy`` (nats) and ``accuracy``."""

    num_tokens: torch.Tensor
    entropy: torch.Tensor
    accuracy: torch.Tensor


@torch.no_grad()
def head_stats(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    ignore_index: int = -100,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> HeadStats:
    """Mean entropy and top-1 accuracy over the tokens whose target is not ``ignore_index``.

    ``hidden`` (N, D), ``targets`` (N,); logits ``c * tanh(s * (h W^T + b) / c)`` are formed a
    chunk of tokens at a time in fp32 (fp64 stays fp64). With no valid token both are 0.
    """
    valid = targets != ignore_index
    h, t = hidden[valid], targets[valid]
    n, vocab = h.shape[0], classifier.shape[0]
    dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    ent = torch.zeros((), dtype=dtype, device=hidden.device)
    hits = torch.zeros((), dtype=torch.int64, device=hidden.device)
    rows = max(1, chunk_elements // max(vocab, 1))
    for start in range(0, n, rows):
        z = torch.nn.functional.linear(h[start : start + rows], classifier, bias).to(dtype)
        if logit_scale != 1.0:
            z.mul_(logit_scale)
        if softcap is not None:
            z.div_(softcap).tanh_().mul_(softcap)
        logp = torch.log_softmax(z, dim=-1)
        ent -= (logp.exp() * logp).sum()
        hits += (z.argmax(dim=-1) == t[start : start + rows]).sum()
    count = torch.tensor(n, device=hidden.device)
    denom = max(n, 1)
    return HeadStats(count, ent / denom, hits.to(dtype) / denom)
