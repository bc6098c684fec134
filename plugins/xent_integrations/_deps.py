"""Optional dependencies: a clear error naming the extra when a library is missing."""

from __future__ import annotations

import importlib.util

from xent_core import NotAvailableError

# the extra of pyproject.toml that installs each library
EXTRAS = {
    "transformers": "transformers",
    "trl": "transformers",
    "lightning": "lightning",
    "torchmetrics": "lightning",
}


def require(*modules: str) -> None:
    """Raise :class:`~xent_core.NotAvailableError` unless every module in ``modules`` imports."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            extra = EXTRAS.get(module, module)
            raise NotAvailableError(
                f"this xent integration needs {module!r}, which is not installed: "
                f"pip install 'xent[{extra}]'"
            )
