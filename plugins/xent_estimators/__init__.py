"""xent plugin: Entropy and information estimators, and the ``xent estimate`` command.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy.
"""

from __future__ import annotations

from xent_core import hookimpl

_ESTIMATORS = {
    "dse": "dse:DiffusionSpectralEntropy",
    "dsmi": "dsmi:DiffusionSpectralMutualInformation",
    "rankme": "rankme:RankMe",
    "erank": "erank:EffectiveRank",
    "alpha-req": "alpha_req:AlphaReQ",
    "matrix-entropy": "matrix_entropy:MatrixEntropy",
    "matrix-nuclear-norm": "matrix_nuclear_norm:MatrixNuclearNorm",
    "vendi": "vendi:Vendi",
    "knn-entropy": "knn_entropy:KnnEntropy",
    "ksg-mi": "ksg_mi:KsgMutualInformation",
    "plugin-entropy": "plugin_entropy:PluginEntropy",
    "miller-madow": "miller_madow:MillerMadowEntropy",
    "chao-shen": "chao_shen:ChaoShenEntropy",
    "gaussian-entropy": "gaussian_entropy:GaussianEntropy",
    "token-entropy": "token_entropy:TokenEntropy",
    "policy-entropy-covariance": "policy_entropy_covariance:PolicyEntropyCovariance",
}


@hookimpl
def register_estimators(register) -> None:  # type: ignore[no-untyped-def]
    """Register this plugin's estimators."""
    for name, target in _ESTIMATORS.items():
        register(f"xent_estimators.{target}", name=name)


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    """Register ``xent estimate``."""
    from .cli import estimate

    register(estimate, name="estimate")


_HELPERS = {
    "RollingEntropy": "rolling",
    "clip_cov_mask": "policy_entropy_covariance",
    "kl_cov_mask": "policy_entropy_covariance",
    "token_covariance": "policy_entropy_covariance",
    "entropy_from_logits": "token_entropy",
    "entropy_from_hidden": "token_entropy",
    "Estimate": "_common",
}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """Lazy access to the helpers (``from xent_estimators import RollingEntropy``)."""
    if name in _HELPERS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HELPERS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
