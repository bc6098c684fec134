"""``xhf``: xent's loss inside transformers causal LMs (needs the ``transformers`` extra).

``from xent_core.integrations import transformers as xhf``; ``xhf.patch(model)``. A re-export of
``xent_integrations.hf`` (and of the TRL helpers when TRL is installed).
"""

from __future__ import annotations

from xent_integrations import require

require("transformers")

from xent_integrations.hf import *  # noqa: E402, F403
from xent_integrations.hf import __all__  # noqa: E402, F401
