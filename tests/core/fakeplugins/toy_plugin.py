"""A well-behaved plugin with two losses and an estimator (lazy targets)."""

from xent_core import hookimpl


@hookimpl
def register_losses(register):
    register("toy_losses:ToyCE", name="toy-ce")
    register("toy_losses:ToySquare")  # name derived: toy-square
    register("toy_losses:ToyDistance", name="toy-distance")


@hookimpl
def register_estimators(register):
    register("toy_losses:count_unique", name="toy-count")


@hookimpl
def register_kernels(register):
    register(
        "toy_losses:ToyKernel", name="toy-kernel", capabilities={"requires": ("no_such_pkg_xyz",)}
    )


def hello(name: str = "world") -> None:
    """Say hello (a plugin sub-command)."""
    print(f"hello {name}")


@hookimpl
def register_commands(register):
    register(hello, name="toy-hello")
