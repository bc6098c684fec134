"""Lightning glue (needs the ``lightning`` extra): ``EstimatorCallback``.

``from xent_core.integrations.lightning import EstimatorCallback``; a re-export of
``xent_integrations.lightning``.
"""

from __future__ import annotations

from xent_integrations import require

require("lightning")

from xent_integrations.lightning import *  # noqa: E402, F403
from xent_integrations.lightning import __all__  # noqa: E402, F401
