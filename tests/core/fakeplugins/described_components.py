"""Components documented with Google-style ``Args:`` sections (read by the spec readers)."""

from __future__ import annotations

from typing import Any

from xent_core import Register, hookimpl


@hookimpl
def register_scaling_models(register: Register) -> None:
    register("described_components:Child", name="child-law")


class Base:
    """Shared options.

    Args:
        delta: Huber threshold on the log residuals;
            smaller is closer to least squares.
        seed (int): random seed of the starts, e.g. ``seeds[i]``.
    """

    def __init__(self, delta: float = 1e-3, seed: int | None = 0) -> None:
        self.delta, self.seed = delta, seed


class Child(Base):
    """A law with one option of its own.

    Args:
        x: name of the input column.

    Returns:
        nothing: this section is not read.
    """

    def __init__(self, x: str = "N", **engine: Any) -> None:
        super().__init__(**engine)
        self.x = x


def factory(scale: float, offset: float = 0.0) -> Base:
    """Build a Base.

    Args:
        scale: multiplier.
        offset: added after scaling.
    """
    return Base(delta=scale + offset)
