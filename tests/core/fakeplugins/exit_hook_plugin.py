"""A plugin whose registration hook calls ``sys.exit()``."""

import sys

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToySquare", name="never-seen-exit")
    sys.exit(3)
