"""A plugin registering an invalid name."""

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToySquare", name="Bad Name!")
