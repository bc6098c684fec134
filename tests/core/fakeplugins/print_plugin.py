"""A plugin that prints to stdout at import and in every hook (must not corrupt ``--json``)."""

from xent_core import hookimpl

print("print_plugin: hello from import")


@hookimpl
def register_losses(register):
    print("print_plugin: registering losses")
    register("toy_losses:ToySquare", name="printed-square")


def noisy() -> None:
    """A plugin sub-command."""


@hookimpl
def register_commands(register):
    print("print_plugin: registering commands")
    register(noisy, name="noisy")
