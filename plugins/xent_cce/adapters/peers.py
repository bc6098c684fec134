"""Adapters to peer libraries, so they can be compared with xent's kernels by name.

Registered only when the package is importable (see ``xent_cce/__init__.py``); nothing here is
imported before a kernel is created.
"""

from __future__ import annotations

import importlib.util
import shutil
from typing import TYPE_CHECKING, ClassVar

import torch

from xent_core import BadParameterError

from ..semantics import resolve_filter_eps
from .wrapped import WrappedCall, WrappedKernel

if TYPE_CHECKING:
    from typing_extensions import Unpack

_APPLE_IMPLS = ("auto", "cce", "torch_compile")


def _has_cxx_compiler() -> bool:
    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


class AppleCCEKernel(WrappedKernel):
    """Apple's Cut Cross-Entropy (package cut-cross-entropy) behind xent's kernel interface.

    ``cut_cross_entropy.linear_cross_entropy(hidden, classifier, targets, ignore_index, softcap,
    reduction, filter_eps, impl)``: the Triton CCE kernel on CUDA (``impl="cce"``), or its
    ``torch.compile`` fallback (``impl="torch_compile"``, which also runs on the CPU with a C++
    compiler). Supports softcap and ``logit_scale`` (applied to hidden); not bias, label
    smoothing nor z-loss (this release lacks them). ``lse`` costs an extra chunked pass. float64
    inputs give a float64 loss, computed by cut-cross-entropy in float32 (so with float32
    accuracy): use ``cce-torch`` for float64 accuracy.

    Args:
        impl: ``"auto"`` (``cce`` on CUDA inputs, else ``torch_compile``), ``"cce"`` or
            ``"torch_compile"``.

    Citation: Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    arXiv:2411.09009.
    """

    citation = ("Cut Your Losses in Large-Vocabulary Language Models", "arXiv:2411.09009")
    capabilities = {
        "differentiable": True,
        "devices": ("cuda", "cpu"),
        "requires": ("cut_cross_entropy",),
    }
    kernel_name: ClassVar[str] = "apple-cce"
    supports: ClassVar[frozenset[str]] = frozenset({"softcap", "none"})

    def __init__(self, impl: str = "auto") -> None:
        if impl not in _APPLE_IMPLS:
            raise BadParameterError(
                f"apple-cce impl must be one of {', '.join(_APPLE_IMPLS)}, got {impl!r}"
            )
        self.impl = impl

    def available(self) -> tuple[bool, str]:
        """Needs the package; ``cce`` needs CUDA, ``torch_compile`` a C++ compiler on the CPU."""
        if importlib.util.find_spec("cut_cross_entropy") is None:
            return (
                False,
                "package cut-cross-entropy is not installed (pip install cut-cross-entropy)",
            )
        cuda = torch.cuda.is_available()
        if self.impl == "cce" and not cuda:
            return False, "impl 'cce' runs Triton kernels on CUDA and no CUDA device is visible"
        if not cuda and not _has_cxx_compiler():
            return False, "no CUDA device, and torch.compile on the CPU needs a C++ compiler"
        mode = self.impl if self.impl != "auto" else ("cce" if cuda else "torch_compile")
        return True, f"cut-cross-entropy, impl {mode}"

    def _call(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None,
        **kw: Unpack[WrappedCall],
    ) -> torch.Tensor:
        from cut_cross_entropy import linear_cross_entropy

        impl = self.impl
        if impl == "auto":
            impl = "cce" if hidden.is_cuda else "torch_compile"
        return linear_cross_entropy(
            hidden,
            classifier,
            targets,
            ignore_index=kw["ignore_index"],
            softcap=kw["softcap"],
            reduction=kw["reduction"],
            filter_eps=resolve_filter_eps(kw["filter_eps"], hidden.dtype) or None,
            impl=impl,
        )


class LigerKernel(WrappedKernel):
    """Liger-Kernel's fused linear cross-entropy (package liger-kernel) behind xent's interface.

    ``liger_fused_linear_cross_entropy(hidden, classifier, targets, bias, ignore_index,
    lse_square_scale=z_loss, label_smoothing, reduction, softcap)``: Triton kernels that chunk
    the tokens and compute the gradients in forward. CUDA only. Supports bias, softcap, label
    smoothing, z-loss and ``logit_scale`` (applied to hidden). ``lse`` costs an extra chunked
    pass.

    Citation: Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training",
    arXiv:2410.10989.
    """

    citation = ("Liger Kernel: Efficient Triton Kernels for LLM Training", "arXiv:2410.10989")
    capabilities = {
        "differentiable": True,
        "devices": ("cuda",),
        "requires": ("liger_kernel", "triton"),
    }
    kernel_name: ClassVar[str] = "liger"
    supports: ClassVar[frozenset[str]] = frozenset(
        {"bias", "softcap", "label_smoothing", "z_loss", "none"}
    )

    def available(self) -> tuple[bool, str]:
        """Needs the package and a CUDA device."""
        if importlib.util.find_spec("liger_kernel") is None:
            return False, "package liger-kernel is not installed (pip install liger-kernel)"
        if not torch.cuda.is_available():
            return False, "liger-kernel runs Triton kernels on CUDA and no CUDA device is visible"
        return True, "liger-kernel fused linear cross-entropy"

    def _call(
        self,
        hidden: torch.Tensor,
        classifier: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None,
        **kw: Unpack[WrappedCall],
    ) -> torch.Tensor:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        return liger_fused_linear_cross_entropy(
            hidden,
            classifier,
            targets,
            bias=bias,
            ignore_index=kw["ignore_index"],
            lse_square_scale=kw["z_loss"],
            label_smoothing=kw["label_smoothing"],
            reduction=kw["reduction"],
            softcap=kw["softcap"],
        )
