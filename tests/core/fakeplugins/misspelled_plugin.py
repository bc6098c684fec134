"""A plugin with a misspelled hook name (must fail loudly, not be ignored)."""

from xent_core import hookimpl


@hookimpl
def register_loss(register):
    register("toy_losses:ToySquare", name="misspelled-square")
