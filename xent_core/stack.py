"""Compatibility alias: ``from xent_core.stack import parse_stack_spec, LossStack`` keeps working.

The code lives in :mod:`xent_core.base_loss` (``Loss``, ``LossStack``) and the torch-free
:mod:`xent_core.stack_spec` (the spec parser); nothing in xent imports this module. Python binds
an imported submodule to its package attribute, which here is the public function
:func:`xent_core.stack`; so that importing this module cannot break ``xent_core.stack(spec)``, the
module is callable and forwards to that function.
"""

from __future__ import annotations

import sys
import types

from .api import stack as _stack
from .base_loss import LossStack, Weight
from .stack_spec import StackSpec, normalize_stack_spec, parse_stack_spec

__all__ = ["LossStack", "Weight", "normalize_stack_spec", "parse_stack_spec"]


class _CallableModule(types.ModuleType):
    def __call__(self, spec: StackSpec) -> LossStack:
        return _stack(spec)


sys.modules[__name__].__class__ = _CallableModule
