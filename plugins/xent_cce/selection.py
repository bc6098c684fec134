"""Choosing a kernel: ``impl="auto"`` and kernel specs such as ``torch-native(chunked=True)``."""

from __future__ import annotations

import ast
from typing import Any

from xent_core import BadParameterError, NotAvailableError

#: ``impl="auto"``: the first available kernel for the device type.
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("cce-triton", "cce-torch"),
    "cpu": ("cce-torch",),
}
FALLBACK = "cce-torch"


def parse_impl(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name(key=value, ...)"`` (Python literals) -> ``(name, params)``."""
    text = spec.strip()
    if "(" not in text:
        return text, {}
    if not text.endswith(")"):
        raise BadParameterError(f"cannot read kernel spec {spec!r}: expected name(key=value, ...)")
    name, _, rest = text.partition("(")
    try:
        call = ast.parse(f"f({rest}", mode="eval").body
        assert isinstance(call, ast.Call) and not call.args
        params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except (SyntaxError, ValueError, AssertionError) as exc:
        raise BadParameterError(
            f"cannot read kernel spec {spec!r}: expected name(key=value, ...) with literal values"
        ) from exc
    return name.strip(), params


def create_kernel(spec: str) -> Any:
    """Create the kernel of a spec through the registry (unknown names raise a XentError)."""
    import xent_core

    name, params = parse_impl(spec)
    return xent_core.kernel(name, **params)


def require_available(kernel: Any, spec: str) -> Any:
    """``kernel`` if it can run here and has the linear-CE interface, else a clear error."""
    if not callable(getattr(kernel, "linear_cross_entropy", None)):
        raise BadParameterError(
            f"kernel {spec!r} has no linear_cross_entropy method, so it cannot run "
            "linear-cross-entropy"
        )
    ok, reason = kernel.available()
    if not ok:
        raise NotAvailableError(f"kernel {spec!r} is not available here: {reason}")
    return kernel


def auto_kernel(device_type: str) -> tuple[str, Any]:
    """The first available kernel of :data:`AUTO_ORDER` for ``device_type``."""
    import xent_core

    for name in AUTO_ORDER.get(device_type, (FALLBACK,)):
        try:
            kernel = xent_core.kernel(name)
        except xent_core.XentError:
            continue
        if kernel.available()[0]:
            return name, kernel
    return FALLBACK, xent_core.kernel(FALLBACK)
