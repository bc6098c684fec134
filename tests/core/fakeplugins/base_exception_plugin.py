"""A plugin whose hook raises a ``BaseException`` that is not an ``Exception``."""

from xent_core import hookimpl


class Escape(BaseException):
    """Not caught by ``except Exception``."""


@hookimpl
def register_estimators(register):
    raise Escape("escaped the hook")
