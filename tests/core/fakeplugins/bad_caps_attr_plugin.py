"""A plugin whose component class declares a malformed ``capabilities`` attribute."""

from xent_core import hookimpl


class BadCaps:
    """A component whose capabilities are not a dict of lists."""

    capabilities = {"devices": "cuda"}

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction


@hookimpl
def register_losses(register):
    register(BadCaps, name="bad-caps-attr")
