"""A plugin registering the same name twice."""

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToySquare", name="twice")
    register("toy_losses:ToySquare", name="twice")
