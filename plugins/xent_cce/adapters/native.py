"""The ``torch-native`` kernel: PyTorch's own ``torch.nn.functional.linear_cross_entropy``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from xent_core import BadParameterError

from .wrapped import WrappedCall, WrappedKernel

if TYPE_CHECKING:
    from typing_extensions import Unpack


class TorchNativeKernel(WrappedKernel):
    """PyTorch's F.linear_cross_entropy (torch >= 2.13), optionally with its batch chunking.

    ``loss = cross_entropy(hidden @ classifier.T + bias, targets)`` computed by PyTorch. With
    ``chunked=False`` this is PyTorch's reference path (the logits are materialised); with
    ``chunked=True`` PyTorch's chunked path runs the batch in pieces
    (``torch.nn.LinearCrossEntropyOptions``), precomputing gradients in forward. Supports bias,
    label smoothing (reference path only: PyTorch's chunked path does not) and ``logit_scale``;
    not softcap nor z-loss. ``lse`` costs an extra chunked pass.

    Args:
        chunked: use PyTorch's chunked path.
        batch_chunk_size: tokens per chunk for the chunked path (``None``: PyTorch's choice).

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009 (the memory problem both address).
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    capabilities = {
        "differentiable": True,
        "devices": ("cpu", "cuda"),
        "dtypes": ("float16", "bfloat16", "float32", "float64"),
        "torch": ">=2.13",
    }
    kernel_name: ClassVar[str] = "torch-native"
    supports: ClassVar[frozenset[str]] = frozenset({"bias", "label_smoothing", "none"})

    def __init__(self, chunked: bool = False, batch_chunk_size: int | None = None) -> None:
        if batch_chunk_size is not None and int(batch_chunk_size) < 1:
            raise BadParameterError(
                f"batch_chunk_size must be a positive integer or None, got {batch_chunk_size!r}"
            )
        self.chunked = bool(chunked)
        self.batch_chunk_size = None if batch_chunk_size is None else int(batch_chunk_size)

    def available(self) -> tuple[bool, str]:
        """True when this torch has ``F.linear_cross_entropy`` (added in torch 2.13)."""
        if not hasattr(torch.nn.functional, "linear_cross_entropy"):
            return False, (
                f"torch {torch.__version__} has no torch.nn.functional.linear_cross_entropy "
                "(added in torch 2.13)"
            )
        if self.chunked and not hasattr(torch.nn, "LinearCrossEntropyOptions"):
            return False, f"torch {torch.__version__} has no torch.nn.LinearCrossEntropyOptions"
        mode = "chunked" if self.chunked else "reference path"
        return True, f"torch {torch.__version__} F.linear_cross_entropy ({mode})"

    def _call(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None,
        **kw: Unpack[WrappedCall],
    ) -> torch.Tensor:
        options = None
        if self.chunked:
            if kw["label_smoothing"]:
                raise BadParameterError(
                    "torch-native with chunked=True does not support label_smoothing (PyTorch's "
                    "chunked path lacks it); use chunked=False or impl='cce-torch'"
                )
            options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=self.batch_chunk_size)
        return torch.nn.functional.linear_cross_entropy(
            hidden,
            classifier,
            targets,
            linear_bias=bias,
            reduction=kw["reduction"],
            ignore_index=kw["ignore_index"],
            label_smoothing=kw["label_smoothing"],
            options=options,
        )
