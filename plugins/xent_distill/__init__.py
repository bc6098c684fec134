"""xent plugin: Knowledge-distillation losses.

Registered through the ``xent`` entry-point group like any third-party plugin. Targets are lazy
``"module:attr"`` strings, so listing components imports nothing heavy.
"""

from __future__ import annotations

from xent_core import Register, hookimpl

#: canonical name -> lazy target of every loss this plugin provides
LOSSES: dict[str, str] = {
    "kd": "xent_distill.kd:KD",
    "reverse-kl": "xent_distill.reverse_kl:ReverseKL",
    "jsd": "xent_distill.jsd:JSD",
    "skew-kl": "xent_distill.skew_kl:SkewKL",
    "skew-reverse-kl": "xent_distill.skew_reverse_kl:SkewReverseKL",
    "tvd": "xent_distill.tvd:TVD",
    "dkd": "xent_distill.dkd:DKD",
    "dist": "xent_distill.dist:DIST",
    "pld": "xent_distill.pld:PLD",
    "linear-kd": "xent_distill.linear_kd:LinearKD",
    "linear-jsd": "xent_distill.linear_jsd:LinearJSD",
}


@hookimpl
def register_losses(register: Register) -> None:
    """Register this plugin's losses."""
    for name, target in LOSSES.items():
        register(target, name=name)
