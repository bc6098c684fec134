"""A plugin whose hook raises."""

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToySquare", name="never-seen")
    raise ValueError("boom in hook")
