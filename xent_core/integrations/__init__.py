"""Optional integrations with training libraries, imported only on request.

``from xent_core.integrations import transformers as xhf`` loads the transformers/TRL glue;
each submodule is a thin re-export of a module of the first-party ``xent_integrations``
package (beside the plugins) and needs only its own library. Importing ``xent_core``, or this
package, imports none of transformers, trl, lightning or torchmetrics. No loss math lives here.
"""

from __future__ import annotations
