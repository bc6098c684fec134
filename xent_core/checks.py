"""One switch for data-dependent input checks (the ones that synchronise with the device).

Losses check their inputs' values by default: targets in range, no NaN/inf, valid top-k teachers.
On a GPU each such check is a host-device synchronisation. Once a training loop is known to be
correct, turn them off for the whole process (``XENT_CHECK_INPUTS=0``) or for a block::

    with xent_core.input_checks(False):
        loss = stack(logits=logits, targets=targets)

Shape, dtype and device checks need no synchronisation and always run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ENABLED: ContextVar[bool] = ContextVar(
    "xent_input_checks", default=os.environ.get("XENT_CHECK_INPUTS", "1") not in ("0", "false")
)


# ``torch.compile`` cannot trace a ContextVar read. While it traces, the switch is read from
# this plain module global instead (dynamo guards on it, so toggling the switch recompiles).
# ``xent_core.base_loss`` (the torch side of the core) installs torch's ``is_compiling``.
_TRACED: bool = _ENABLED.get()
_is_compiling: Callable[[], bool] = lambda: False  # noqa: E731


def input_checks_enabled() -> bool:
    """Whether data-dependent input checks run (default: yes; ``XENT_CHECK_INPUTS=0``: no)."""
    if _is_compiling():
        return _TRACED
    return _ENABLED.get()


@contextmanager
def input_checks(enabled: bool) -> Iterator[None]:
    """Turn data-dependent input checks on or off inside a ``with`` block."""
    global _TRACED
    token = _ENABLED.set(bool(enabled))
    before, _TRACED = _TRACED, bool(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)
        _TRACED = before
