"""xent plugin: Cut Cross-Entropy kernels and the linear-cross-entropy loss.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy. Peer adapters
(``apple-cce``, ``liger``) are registered only when their package is importable, checked with
:func:`importlib.util.find_spec` (nothing is imported).
"""

from __future__ import annotations

import importlib.util

from xent_core import hookimpl


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@hookimpl
def register_kernels(register) -> None:  # type: ignore[no-untyped-def]
    """Register the linear cross-entropy kernels."""
    register("xent_cce.torch_kernel:CCETorchKernel", name="cce-torch")
    register(
        "xent_cce.triton_kernel:CCETritonKernel",
        name="cce-triton",
        capabilities={"requires": ("triton",)},
    )
    register("xent_cce.naive:NaiveKernel", name="naive")
    register("xent_cce.native:TorchNativeKernel", name="torch-native")
    if _importable("cut_cross_entropy"):
        register("xent_cce.peers:AppleCCEKernel", name="apple-cce")
    if _importable("liger_kernel"):
        register("xent_cce.peers:LigerKernel", name="liger")


@hookimpl
def register_losses(register) -> None:  # type: ignore[no-untyped-def]
    """Register the linear-cross-entropy loss."""
    register("xent_cce.loss:LinearCrossEntropy", name="linear-cross-entropy")


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    """Register ``xent bench linear-ce`` (Typer only; torch is imported when it runs)."""
    from .bench_cli import bench_app

    register(bench_app, name="bench")
