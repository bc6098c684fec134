"""xent plugin: Scaling-law models and the fitting engine.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy (no numpy, no scipy).
"""

from __future__ import annotations

import importlib.util

from xent_core import hookimpl

#: canonical name -> lazy target of every scaling law of this plugin
LAWS: dict[str, str] = {
    "power-law": "xent_fitters.power_law:PowerLaw",
    "kaplan": "xent_fitters.kaplan:KaplanLaw",
    "chinchilla": "xent_fitters.chinchilla:ChinchillaLaw",
    "isoflop": "xent_fitters.isoflop:IsoFLOPLaw",
    "nmt-bivariate": "xent_fitters.nmt_bivariate:NMTBivariateLaw",
    "data-constrained": "xent_fitters.data_constrained:DataConstrainedLaw",
    "entropy-performance": "xent_fitters.entropy_performance:EntropyPerformanceLaw",
    "lr-annealing": "xent_fitters.lr_annealing:LRAnnealingLaw",
    "multi-power": "xent_fitters.multi_power:MultiPowerLaw",
    "step-law": "xent_fitters.step_law:StepLaw",
}


def _module_exists(target: str) -> bool:
    # a law whose module is not in this tree (yet) is skipped instead of failing the whole plugin
    return importlib.util.find_spec(target.partition(":")[0]) is not None


@hookimpl
def register_scaling_models(register) -> None:  # type: ignore[no-untyped-def]
    """Register this plugin's scaling laws."""
    for name, target in LAWS.items():
        if _module_exists(target):
            register(target, name=name)


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    """Register ``xent fit``."""
    from .cli import fit_command

    register(fit_command, name="fit")
