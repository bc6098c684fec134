"""xent plugin: Cut Cross-Entropy kernels and the linear-cross-entropy loss.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy. Peer adapters
(``apple-cce``, ``liger``) are registered only when their package is importable, checked with
:func:`importlib.util.find_spec` (nothing is imported): that is availability, not a skipped
module.
"""

from __future__ import annotations

import importlib.util

from xent_core import Register, RegisterCommand, hookimpl

#: canonical name -> lazy target of every kernel this plugin provides
KERNELS: dict[str, str] = {
    "cce-torch": "xent_cce.torch.kernel:CCETorchKernel",
    "cce-triton": "xent_cce.triton.kernel:CCETritonKernel",
    "naive": "xent_cce.torch.naive:NaiveKernel",
    "torch-native": "xent_cce.adapters.native:TorchNativeKernel",
    "logprob-moments": "xent_cce.torch.moments:LogprobMomentsKernel",
}

#: canonical name -> (lazy target, package it wraps) of the peer adapters
PEER_KERNELS: dict[str, tuple[str, str]] = {
    "apple-cce": ("xent_cce.adapters.peers:AppleCCEKernel", "cut_cross_entropy"),
    "liger": ("xent_cce.adapters.peers:LigerKernel", "liger_kernel"),
}

#: canonical name -> lazy target of every loss this plugin provides
LOSSES: dict[str, str] = {
    "linear-cross-entropy": "xent_cce.loss:LinearCrossEntropy",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@hookimpl
def register_kernels(register: Register) -> None:
    """Register the linear cross-entropy kernels (peers only where their package is installed)."""
    peers = {name: target for name, (target, pkg) in PEER_KERNELS.items() if _importable(pkg)}
    for name, target in {**KERNELS, **peers}.items():
        register(target, name=name)


@hookimpl
def register_losses(register: Register) -> None:
    """Register the linear-cross-entropy loss."""
    for name, target in LOSSES.items():
        register(target, name=name)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``xent bench linear-ce`` (Typer only; torch is imported when it runs)."""
    from .bench.cli import bench_app

    register(bench_app, name="bench")
