"""A plugin whose components are fine but whose command hook calls ``sys.exit()``."""

import sys

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToySquare", name="exit-cmd-square")


@hookimpl
def register_commands(register):
    sys.exit("bye")
