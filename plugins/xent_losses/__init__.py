"""xent plugin: the cross-entropy family of losses.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy (no torch). Each loss
lives in its own module with a functional form beside the module form; ``_common`` holds the
shared input checks and reductions.
"""

from __future__ import annotations

from xent_core import Register, RegisterCommand, hookimpl

#: canonical name -> lazy target of every loss this plugin provides
LOSSES: dict[str, str] = {
    "cross-entropy": "xent_losses.cross_entropy:CrossEntropyLoss",
    "z-loss": "xent_losses.z_loss:ZLoss",
    "comp-sum": "xent_losses.comp_sum:CompSumLoss",
    "generalized-ce": "xent_losses.generalized_ce:GeneralizedCrossEntropyLoss",
    "mae": "xent_losses.mae:MAELoss",
    "focal": "xent_losses.focal:FocalLoss",
    "poly1": "xent_losses.poly1:Poly1Loss",
    "ldr-kl": "xent_losses.ldr_kl:LDRKLLoss",
    "aldr-kl": "xent_losses.aldr_kl:ALDRKLLoss",
    "dice": "xent_losses.dice:DiceLoss",
    "bias-loss": "xent_losses.bias_loss:BiasLoss",
    "hl-gauss": "xent_losses.hl_gauss:HLGaussLoss",
    "two-hot": "xent_losses.two_hot:TwoHotLoss",
    "pass-at-n": "xent_losses.pass_at_n:PassAtNLoss",
    "emo": "xent_losses.emo:EMOLoss",
    "dco": "xent_losses.dco:DCOLoss",
    "implicit-prm": "xent_losses.implicit_prm:ImplicitPRMLoss",
    "clip-cov": "xent_losses.clip_cov:ClipCovLoss",
    "kl-cov": "xent_losses.kl_cov:KLCovLoss",
    "correctness-aware": "xent_losses.correctness_aware:CorrectnessAwareLoss",
    "cape": "xent_losses.cape:CaPELoss",
    "symmetric-ce": "xent_losses.symmetric_ce:SymmetricCELoss",
    "binary-kd": "xent_losses.binary_kd:BinaryKDLoss",
    "nt-xent": "xent_losses.nt_xent:NTXentLoss",
    "attention-entropy-reg": "xent_losses.attention_entropy_reg:AttentionEntropyRegLoss",
    "cs-ib": "xent_losses.cs_ib:CSIBLoss",
    "mmcr": "xent_losses.mmcr:MMCRLoss",
    "nn-entropy-reg": "xent_losses.nn_entropy_reg:NNEntropyRegLoss",
    "matrix-entropy-reg": "xent_losses.matrix_entropy_reg:MatrixEntropyRegLoss",
    "dcov-reg": "xent_losses.dcov_reg:DCovRegLoss",
}


@hookimpl
def register_losses(register: Register) -> None:
    """Register this plugin's losses."""
    for name, target in LOSSES.items():
        register(target, name=name)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``xent bench losses`` (merged into the ``bench`` group; Typer only)."""
    from .bench_cli import bench_app

    register(bench_app, name="bench")
