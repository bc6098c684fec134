"""xent estimators as torchmetrics metrics (needs the ``lightning`` extra).

``xent_core.metric("rankme")`` (or ``from xent_core.integrations.torchmetrics import metric``):
a re-export of ``xent_integrations.metrics``.
"""

from __future__ import annotations

from xent_integrations import require

require("torchmetrics")

from xent_integrations.metrics import *  # noqa: E402, F403
from xent_integrations.metrics import __all__  # noqa: E402, F401
from xent_integrations.metrics import metric as metric  # noqa: E402  (named for type checkers)
