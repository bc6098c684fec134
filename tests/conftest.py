"""Suite-wide settings.

Triton kernels run in the Triton interpreter on machines without CUDA, so CI exercises them on the
CPU. This must be set before anything imports triton; a GPU run sets TRITON_INTERPRET=0 itself.
"""

from __future__ import annotations

import os
import shutil

if "TRITON_INTERPRET" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["TRITON_INTERPRET"] = "1"
