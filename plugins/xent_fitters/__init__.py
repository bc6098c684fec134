"""xent plugin: Scaling-law models and the fitting engine.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy (no numpy, no scipy).
"""

from __future__ import annotations

from xent_core import Register, RegisterCommand, hookimpl

#: canonical name -> lazy target of every scaling law of this plugin
LAWS: dict[str, str] = {
    "power-law": "xent_fitters.power_law:PowerLaw",
    "kaplan": "xent_fitters.kaplan:KaplanLaw",
    "chinchilla": "xent_fitters.chinchilla:ChinchillaLaw",
    "isoflop": "xent_fitters.isoflop:IsoFLOPLaw",
    "compute-frontier": "xent_fitters.frontier:ComputeFrontier",
    "nmt-bivariate": "xent_fitters.nmt_bivariate:NMTBivariateLaw",
    "data-constrained": "xent_fitters.data_constrained:DataConstrainedLaw",
    "entropy-performance": "xent_fitters.entropy_performance:EntropyPerformanceLaw",
    "lr-annealing": "xent_fitters.lr_annealing:LRAnnealingLaw",
    "multi-power": "xent_fitters.multi_power:MultiPowerLaw",
    "step-law": "xent_fitters.step_law:StepLaw",
}


@hookimpl
def register_scaling_models(register: Register) -> None:
    """Register this plugin's scaling laws."""
    for name, target in LAWS.items():
        register(target, name=name)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``xent fit``."""
    from .cli import fit_command

    register(fit_command, name="fit")
