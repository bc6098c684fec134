"""Core tests use small fake plugin modules from ``fakeplugins/``."""

from __future__ import annotations

import sys
from pathlib import Path

FAKE = Path(__file__).parent / "fakeplugins"
if str(FAKE) not in sys.path:
    sys.path.insert(0, str(FAKE))
