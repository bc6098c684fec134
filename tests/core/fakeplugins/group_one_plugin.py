"""A plugin that registers a ``tools`` command group with the sub-command ``one``."""

import typer

from xent_core import hookimpl

tools = typer.Typer(name="tools", help="Tools from several plugins.", no_args_is_help=True)


@tools.callback()
def _tools() -> None:
    """Tools from several plugins."""


@tools.command("one")
def one() -> None:
    """Print the sub-command's name."""
    print("tools one")


@tools.command("shared")
def shared() -> None:
    """A sub-command both plugins define: the first plugin's wins, the other is reported."""
    print("shared from one")


@hookimpl
def register_commands(register):
    register(tools, name="tools")
