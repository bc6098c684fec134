"""BLAS thread control for the fits: many tiny BLAS calls run fastest on one thread."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

_CONTROLLER: Any = None


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run BLAS single-threaded inside the block (when ``threadpoolctl`` is installed).

    The fits make many tiny BLAS calls (scipy's L-BFGS-B, matrix-vector products); with
    OpenBLAS threads on a busy machine each one can wait milliseconds for its threads, which made
    a polish 80 times slower in our measurements. One thread is always faster at these sizes.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        import scipy.optimize  # noqa: F401  (load scipy's own BLAS before taking control)

        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - optional
            _CONTROLLER = False
        else:
            _CONTROLLER = ThreadpoolController()
    if _CONTROLLER is False:
        yield
        return
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def _single_threaded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_thread_blas():
            return fn(*args, **kwargs)

    return wrapper
