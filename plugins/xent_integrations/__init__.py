"""Glue between xent and the training libraries people run (transformers, TRL, Lightning).

Not a registered plugin: these modules register no component, they drive the registry's losses,
kernels and estimators from inside other libraries' training loops. Users import them through the
core's lazy facade, ``xent_core.integrations`` (for example
``from xent_core.integrations import transformers as xhf``). Each module needs only its own
library; importing ``xent_core`` or this package imports none of them.
"""

from __future__ import annotations

from ._deps import require

__all__ = ["require"]
