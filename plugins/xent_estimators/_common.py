"""Shared plumbing of the estimators: input conversion, validation, units, the result record.

Every estimator follows one protocol::

    est = SomeEstimator(**params)
    value: float = est(x)                      # or est(x, y) for two-variable estimators
    value, details = est(x, details=True)      # details: dict (spectrum, counts, R^2, ...)

Inputs may be numpy arrays, torch tensors (CPU or CUDA) or nested lists. Spectral estimators work
in torch float64 on the input's device; neighbour and discrete estimators work in numpy on the CPU.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from xent_core import BadInputError, BadParameterError, validate


class Estimate(NamedTuple):
    """``(value, details)`` returned by an estimator called with ``details=True``."""

    value: float
    details: dict[str, Any]


def finish(value: float, details: dict[str, Any] | None, want: bool) -> float | Estimate:
    """Return ``value`` as a Python float, or an :class:`Estimate` when details are wanted."""
    value = float(value)
    if want:
        return Estimate(value, dict(details or {}))
    return value


# ----------------------------------------------------------------------------- units
def log_base(base: float | int | str) -> float:
    """Natural log of an entropy ``base`` (``e``, ``2``, ``10``, ...); validates it."""
    if isinstance(base, str):
        key = base.strip().lower()
        if key in ("e", "nat", "nats"):
            return 1.0
        if key in ("bit", "bits"):
            return math.log(2.0)
        try:
            base = float(key)
        except ValueError:
            raise BadParameterError(
                f"base must be a number > 0 and != 1 (or 'e', 'bits'), got {base!r}"
            ) from None
    b = validate.number("base", base)
    if not math.isfinite(b) or b <= 0.0 or b == 1.0:
        raise BadParameterError(f"base must be a number > 0 and != 1, got {base!r}")
    return math.log(b)


def unit_name(base: float | int | str) -> str:
    """``nats``, ``bits``, ``dits`` or ``log<base> units``."""
    lb = log_base(base)
    if math.isclose(lb, 1.0):
        return "nats"
    if math.isclose(lb, math.log(2.0)):
        return "bits"
    if math.isclose(lb, math.log(10.0)):
        return "dits"
    return f"log{float(base):g} units"


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` or a :class:`BadParameterError`.

    A float with an integral value (``3.0``, as a CLI or a config may write it) is accepted;
    ``3.5``, bools, strings and ``None`` are not.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return validate.integer(name, value, low=minimum)


def check_flag(value: Any, name: str) -> bool:
    """A real boolean (``"no"`` or ``0`` is not silently taken as a flag)."""
    return validate.flag(name, value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` lower-cased if it is one of ``choices``; else a :class:`BadParameterError`."""
    if not isinstance(value, str):
        raise BadParameterError(
            f"{name} must be one of {', '.join(choices)}; got {value!r} ({type(value).__name__})"
        )
    key = value.strip().lower()
    if key not in choices:
        raise BadParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return key


# ----------------------------------------------------------------------------- conversion
def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__} of shape {tuple(shape)}" if shape is not None else type(x).__name__


def to_tensor(x: Any, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``x`` as a floating torch tensor of ``dtype`` on its own device (numpy/lists: CPU)."""
    if x is None:
        raise BadInputError(f"{name} is required")
    try:
        if isinstance(x, torch.Tensor):
            t = x.detach()
        else:
            arr = np.asarray(x)
            if arr.dtype == object or arr.dtype.kind not in "biuf":
                raise BadInputError(
                    f"{name} must be numeric (an array or tensor), got {_describe(x)} of dtype {arr.dtype}"
                )
            t = torch.from_numpy(np.ascontiguousarray(arr))
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(
            f"{name} must be an array or tensor, got {_describe(x)}: {exc}"
        ) from exc
    if t.is_complex():
        raise BadInputError(f"{name} must be real-valued, got a complex tensor")
    return t.to(dtype)


def to_numpy(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """``x`` as a numpy array of ``dtype`` on the CPU (CUDA tensors are copied to the host)."""
    if x is None:
        raise BadInputError(f"{name} is required")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists, ...
        raise BadInputError(
            f"{name} must be an array or tensor, got {_describe(x)}: {exc}"
        ) from exc
    if dtype is None:
        return arr
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise BadInputError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def all_finite(x: torch.Tensor | np.ndarray) -> bool:
    """True when ``x`` has no NaN or inf: two reductions (min and max propagate NaN), so no
    temporary as large as ``x`` is made (``isfinite`` would allocate several)."""
    if isinstance(x, torch.Tensor):
        if x.numel() == 0 or not x.is_floating_point():
            return True
        lo, hi = torch.aminmax(x)
        return bool(torch.isfinite(lo) & torch.isfinite(hi))
    if x.size == 0 or x.dtype.kind != "f":
        return True
    return bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`BadInputError` if ``x`` holds NaN or inf."""
    if not all_finite(x):
        raise BadInputError(f"{name} contains NaN or inf values; clean or drop those rows first")


def as_matrix(
    x: Any,
    name: str,
    *,
    min_rows: int = 2,
    allow_vector: bool = False,
    backend: str = "torch",
    dtype: Any = None,
    finite: bool = True,
) -> Any:
    """Validate a 2-D sample matrix (rows = samples) and return it as a tensor or numpy array.

    ``allow_vector`` turns a 1-D input into a single column. Raises :class:`BadInputError` for
    other ranks, empty feature axes, too few rows and (unless ``finite=False``: the caller
    checks a reduction of its own and calls :func:`check_finite` when that is not finite)
    non-finite values.
    """
    if backend == "torch":
        m = to_tensor(x, name, dtype or torch.float64)
    else:
        m = to_numpy(x, name, dtype or np.float64)
    if m.ndim == 1 and allow_vector:
        m = m.reshape(-1, 1)
    if m.ndim != 2:
        want = "(n,) or (n, d)" if allow_vector else "(n, d): rows are samples"
        raise BadInputError(f"{name} must have shape {want}; got shape {tuple(m.shape)}")
    if m.shape[1] < 1:
        raise BadInputError(f"{name} has no features (shape {tuple(m.shape)})")
    if m.shape[0] < min_rows:
        raise BadInputError(
            f"{name} needs at least {min_rows} samples (rows); got {m.shape[0]} (shape {tuple(m.shape)})"
        )
    if finite:
        check_finite(m, name)
    return m


def no_second_input(y: Any, estimator: str) -> None:
    """One-variable estimators reject a second input instead of ignoring it."""
    if y is not None:
        raise BadInputError(
            f"{estimator} takes one input (rows are samples); a second input was given"
        )


# ----------------------------------------------------------------------------- spectra
def shannon(p: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` in nats with ``0 log 0 = 0`` (``p`` need not be normalised here)."""
    return -torch.special.xlogy(p, p).sum()


def normalized_spectrum(values: torch.Tensor) -> torch.Tensor:
    """Clamp tiny negative round-off to 0 and normalise to sum 1."""
    v = values.clamp_min(0)
    total = v.sum()
    if not bool(total > 0):
        raise BadInputError("the spectrum is all zeros: the input matrix is zero")
    return v / total


def pow2_scale(x: torch.Tensor | np.ndarray) -> float:
    """A power of two near ``max |x|`` (1 for an all-zero or empty ``x``).

    Dividing by it is exact in floating point (no rounding, only the exponent changes), so an
    estimator can work on ``x / s`` without changing its value, and data of any magnitude
    (``1e200``) no longer overflows in squares, norms and Gram matrices.
    """
    if isinstance(x, torch.Tensor):
        m = float(torch.stack(torch.aminmax(x)).abs().max()) if x.numel() else 0.0
    else:
        m = float(np.abs(x).max()) if x.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    return math.ldexp(1.0, math.frexp(m)[1])


def preprocess_rows(
    x: torch.Tensor, *, center: bool, normalize_rows: bool, check: bool = True
) -> torch.Tensor:
    """Optionally centre the columns, then optionally scale each row to unit L2 norm.

    ``check=False`` skips the zero-row check (a data-dependent branch: the differentiable losses
    that reuse this turn it off with ``xent_core.input_checks``, e.g. under ``torch.compile``).
    """
    host = _lapack_on_host(x)
    if center:
        mean = x.mean(dim=0, keepdim=True)
        x = torch.sub(x, mean, out=host_empty_like(x)) if host else x - mean
    if normalize_rows:
        if check:  # the data-dependent fast path (checks off: no branch, one rescale below)
            norms = x.norm(dim=1, keepdim=True)
            if _squares_safe(norms):
                if not host:
                    return x / norms
                # the centred rows are our own buffer: divide in place
                return x.div_(norms) if center else torch.div(x, norms, out=host_empty_like(x))
        # each row is first divided by a power of two near its largest entry (exact), so the
        # norm of a row of magnitude 1e200 does not overflow; the unit rows are unchanged
        peak = x.abs().amax(dim=1, keepdim=True)
        _, exponent = torch.frexp(torch.where(peak > 0, peak, torch.ones_like(peak)))
        x = torch.ldexp(x, -exponent.to(x.dtype))
        norms = x.norm(dim=1, keepdim=True)
        if check and bool((norms == 0).any()):
            bad = int((norms == 0).sum())
            raise BadInputError(
                f"{bad} row(s) are zero{' after centring' if center else ''} and cannot be "
                "normalised to unit length; drop them or pass normalize_rows=False"
            )
        x = x / norms
    return x


def _squares_safe(norms: torch.Tensor) -> bool:
    """True when every row norm lies in [2^-e, 2^e] (e = 400 in float64, 50 in float32 and
    bfloat16: about 0.39 of the dtype's largest exponent): the squares summed into each norm
    neither overflow nor lose a bit that counts, so rescaling the rows by a power of two first
    (exact) would give the same unit rows. One reduction: the fast path of
    :func:`preprocess_rows`."""
    if norms.numel() == 0:
        return False
    e = math.frexp(torch.finfo(norms.dtype).max)[1] * 400 // 1024
    lo, hi = torch.aminmax(norms)
    return bool((lo >= 2.0**-e) & (hi <= 2.0**e))


def _lapack_on_host(x: torch.Tensor) -> bool:
    """True for a CPU float64 tensor outside autograd: numpy's BLAS / LAPACK (OpenBLAS) then
    runs :func:`gram` and :func:`sym_eigvalsh` (zero-copy views), and numpy allocates the
    large buffers (:func:`host_empty_like`)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float64
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def host_empty_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised CPU float64 tensor of ``x``'s shape, allocated by numpy, which asks the
    kernel for huge pages on large buffers: the first writes into it fault ~512x fewer pages
    than into torch's own allocation (a 4000 x 256 subtraction: 1.8 vs 4.8 ms when each large
    buffer is fresh from ``mmap``, as in the benchmark workers)."""
    return torch.from_numpy(np.empty(tuple(x.shape)))


def gram(x: torch.Tensor, rows: bool | None = None) -> torch.Tensor:
    """``x x^T`` (``rows=True``) or ``x^T x`` (``False``; ``None``: whichever is smaller). On the
    CPU without autograd it is numpy's product, which BLAS forms with ``syrk`` (one triangle:
    half the flops of torch's ``gemm``)."""
    if rows is None:
        rows = x.shape[1] > x.shape[0]
    if _lapack_on_host(x):
        a = x.detach().numpy()
        return torch.from_numpy(a @ a.T if rows else a.T @ a)
    return x @ x.T if rows else x.T @ x


def sym_eigvalsh(m: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of the symmetric ``m`` (``torch.linalg.eigvalsh``). On the CPU
    without autograd numpy's ``dsyevd`` (OpenBLAS) runs it: 1.6x faster than torch's (MKL) at
    n = 800 on the AMD EPYC of docs/benchmarks.md, the same LAPACK routine."""
    if _lapack_on_host(m):
        return torch.from_numpy(np.linalg.eigvalsh(m.detach().numpy()))
    return torch.linalg.eigvalsh(m)


def covariance_eigenvalues(x: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending, >= 0) of ``x^T x / n`` via the smaller Gram matrix."""
    ev = sym_eigvalsh(gram(x) / x.shape[0])
    return ev.flip(0).clamp_min(0)


def to_host(t: torch.Tensor) -> np.ndarray:
    """A detached float64 numpy copy (for ``details``)."""
    return t.detach().to("cpu", torch.float64).numpy()
