"""What xent expects of each component kind, as typing Protocols (torch-free).

The factories return these types: ``xent_core.kernel(...)`` is a :class:`Kernel`,
``xent_core.estimator(...)`` an :class:`Estimator`, ``xent_core.scaling_model(...)`` a
:class:`ScalingModel`; a loss is a ``torch.nn.Module`` (usually a :class:`~xent_core.Loss`).
Components need not inherit from them: any class with these methods conforms. Tensors are typed
``Any`` so that this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Estimator", "Kernel", "ScalingModel"]


@runtime_checkable
class Kernel(Protocol):
    """A compute kernel for linear (hidden @ classifier.T) losses.

    ``linear_cross_entropy`` returns ``(loss, lse)``; ``logsumexp`` and ``token_entropy`` return
    one value per token, without forming the (tokens x vocabulary) logits when the kernel can.
    """

    def available(self) -> tuple[bool, str]:
        """Whether the kernel can run here, and why not."""
        ...

    def linear_cross_entropy(
        self, hidden: Any, classifier: Any, targets: Any, bias: Any = None, /, **options: Any
    ) -> tuple[Any, Any]:
        """``(loss, lse)`` of ``cross_entropy(hidden @ classifier.T + bias, targets)``."""
        ...

    def logsumexp(self, hidden: Any, classifier: Any, bias: Any = None, /, **options: Any) -> Any:
        """Per-token log-sum-exp of the logits."""
        ...

    def token_entropy(
        self, hidden: Any, classifier: Any, bias: Any = None, /, **options: Any
    ) -> Any:
        """Per-token entropy (nats) of the softmax of the logits."""
        ...


@runtime_checkable
class Estimator(Protocol):
    """An estimator of entropy or information: ``est(x, y=None, *, details=False)``.

    Returns a float, or ``(value, details)`` with ``details=True``.
    """

    def __call__(self, x: Any, y: Any = None, /, *, details: bool = False) -> Any: ...


@runtime_checkable
class ScalingModel(Protocol):
    """A scaling-law model: ``fit(data)`` returns a fit result with ``predict`` and a summary."""

    def fit(self, data: Any, /) -> Any:
        """Fit the law to ``data`` (a dict of columns, a DataFrame, a CSV path or curves)."""
        ...
