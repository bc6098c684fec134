"""A package plugin whose components share a base class defined in another module."""

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_pkg.scaled:ScaledSquare", name="scaled-square")
