"""A second plugin that also registers ``toy-ce`` (ambiguity) under its own id."""

from xent_core import hookimpl


class OtherCE:
    """Another toy CE."""


@hookimpl
def register_losses(register):
    register(OtherCE, name="toy-ce")
