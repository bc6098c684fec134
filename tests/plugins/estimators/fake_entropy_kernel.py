"""A materialising stand-in for the cce kernels' ``token_entropy`` (tests only).

Lets the hidden-state path of ``token-entropy`` be tested on its own, with a counter showing
that the estimator really goes through the registry.
"""

from __future__ import annotations

import torch

from xent_core import Register, hookimpl

CALLS: list[tuple[int, ...]] = []
BUDGETS: list[int] = []


class MaterialisingKernel:
    """Computes the logits in full: a reference, not a kernel to use."""

    def __init__(self, chunk_elements: int = 0) -> None:
        BUDGETS.append(chunk_elements)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def token_entropy(self, hidden, classifier, bias=None, *, softcap=None, logit_scale=1.0):
        CALLS.append(tuple(hidden.shape))
        z = hidden.double() @ classifier.double().T
        if bias is not None:
            z = z + bias.double()
        z = z * logit_scale
        if softcap is not None:
            z = softcap * torch.tanh(z / softcap)
        logp = torch.log_softmax(z, dim=-1)
        return -(logp.exp() * logp).sum(-1).float()


@hookimpl
def register_kernels(register: Register) -> None:
    register(MaterialisingKernel, name="cce-torch")
