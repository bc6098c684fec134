"""xent plugin: Entropy and information estimators, and the ``xent estimate`` command.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

from xent_core import Register, RegisterCommand, hookimpl

#: canonical name -> lazy target of every estimator this plugin provides
ESTIMATORS: dict[str, str] = {
    "dse": "xent_estimators.dse:DiffusionSpectralEntropy",
    "dsmi": "xent_estimators.dsmi:DiffusionSpectralMutualInformation",
    "rankme": "xent_estimators.rankme:RankMe",
    "erank": "xent_estimators.erank:EffectiveRank",
    "alpha-req": "xent_estimators.alpha_req:AlphaReQ",
    "matrix-entropy": "xent_estimators.matrix_entropy:MatrixEntropy",
    "matrix-nuclear-norm": "xent_estimators.matrix_nuclear_norm:MatrixNuclearNorm",
    "vendi": "xent_estimators.vendi:Vendi",
    "knn-entropy": "xent_estimators.knn_entropy:KnnEntropy",
    "ksg-mi": "xent_estimators.ksg_mi:KsgMutualInformation",
    "plugin-entropy": "xent_estimators.plugin_entropy:PluginEntropy",
    "miller-madow": "xent_estimators.miller_madow:MillerMadowEntropy",
    "chao-shen": "xent_estimators.chao_shen:ChaoShenEntropy",
    "gaussian-entropy": "xent_estimators.gaussian_entropy:GaussianEntropy",
    "token-entropy": "xent_estimators.token_entropy:TokenEntropy",
    "policy-entropy-covariance": "xent_estimators.policy_entropy_covariance:PolicyEntropyCovariance",
    "ece": "xent_estimators.ece:ExpectedCalibrationError",
    "brier-score": "xent_estimators.brier_score:BrierScore",
    "ks-calibration-error": "xent_estimators.ks_calibration:KSCalibrationError",
    "temperature-scaling": "xent_estimators.temperature_scaling:TemperatureScaling",
    "pass-at-k": "xent_estimators.pass_at_k:PassAtK",
    "neural-collapse": "xent_estimators.neural_collapse:NeuralCollapse",
    "intrinsic-dimension": "xent_estimators.intrinsic_dimension:IntrinsicDimension",
    "distance-correlation": "xent_estimators.distance_correlation:DistanceCorrelation",
    "best-of-n-kl": "xent_estimators.best_of_n_kl:BestOfNKL",
    "label-sharpness": "xent_estimators.label_sharpness:LabelSharpness",
    "dc-pdd": "xent_estimators.dc_pdd:DCPDD",
    "min-k-prob": "xent_estimators.min_k_prob:MinKProb",
    "entropy-patching": "xent_estimators.entropy_patching:EntropyPatching",
    "entropy-switch": "xent_estimators.entropy_switch:EntropySwitchCost",
    "attention-entropy": "xent_estimators.attention_entropy:AttentionEntropy",
    "cs-divergence": "xent_estimators.cauchy_schwarz:CSDivergence",
    "cs-qmi": "xent_estimators.cauchy_schwarz:CSQuadraticMI",
    "mixture-log-loss": "xent_estimators.mixture_log_loss:MixtureLogLoss",
    "compressed-mi": "xent_estimators.compressed_mi:CompressedMutualInformation",
}


@hookimpl
def register_estimators(register: Register) -> None:
    """Register this plugin's estimators."""
    for name, target in ESTIMATORS.items():
        register(target, name=name)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``xent estimate``, ``xent calibrate``, ``xent detect``, ``xent bench estimators``."""
    from .bench_cli import bench_app
    from .calibrate_cli import calibrate
    from .cli import estimate
    from .detect_cli import detect

    register(estimate, name="estimate")
    register(calibrate, name="calibrate")
    register(detect, name="detect")
    register(bench_app, name="bench")


_HELPERS = {
    "RollingEntropy": "rolling",
    "clip_cov_mask": "policy_entropy_covariance",
    "kl_cov_mask": "policy_entropy_covariance",
    "token_covariance": "policy_entropy_covariance",
    "entropy_from_logits": "token_entropy",
    "entropy_from_hidden": "token_entropy",
    "Estimate": "_common",
    "fit_temperature": "temperature_scaling",
    "Calibration": "temperature_scaling",
    "token_counts": "token_freq",
    "counts_from_files": "token_freq",
    "read_token_ids": "token_freq",
    "read_token_docs": "token_freq",
    "entropy_patch_starts": "entropy_patching",
    "Patches": "entropy_patching",
    "EntropySwitch": "entropy_switch",
    "switch_schedule": "entropy_switch",
    "switch_cost": "entropy_switch",
    "entropy_invariant_scale": "attention_entropy",
    "attention_row_entropy": "attention_entropy",
    "attention_entropy_from_qk": "attention_entropy",
    "cs_divergence_gaussian": "cauchy_schwarz",
    "matrix_entropy_tensor": "matrix_entropy",
    "spectrum_entropy": "matrix_entropy",
    "dcov_terms": "distance_correlation",
    "jdcov2": "distance_correlation",
}


def __getattr__(name: str) -> Any:
    """Lazy access to the helpers (``from xent_estimators import RollingEntropy``)."""
    if name in _HELPERS:
        return getattr(importlib.import_module(f"{__name__}.{_HELPERS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
