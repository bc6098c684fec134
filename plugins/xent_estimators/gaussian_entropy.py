"""Differential entropy of a Gaussian fitted to the samples (closed form)."""

from __future__ import annotations

import math
from typing import Any

import torch

from xent_core import BadInputError

from ._common import (
    as_matrix,
    check_flag,
    finish,
    gram,
    host_empty_like,
    log_base,
    no_second_input,
    pow2_scale,
    to_host,
    unit_name,
)


def logdet_bias(n: int, d: int) -> float:
    """``E[log det S] - log det Sigma`` for the unbiased sample covariance ``S`` of ``n`` Gaussians.

    ``(n - 1) S`` is Wishart with ``n - 1`` degrees of freedom, so the bias is
    ``sum_{i=1..d} psi((n - i) / 2) + d log(2 / (n - 1))``.
    """
    from scipy.special import digamma

    return float(sum(digamma((n - i) / 2.0) for i in range(1, d + 1)) + d * math.log(2.0 / (n - 1)))


class GaussianEntropy:
    """Gaussian entropy: closed-form differential entropy of a Gaussian with the sample covariance.

    For ``x`` (n, d) with unbiased sample covariance ``S`` (``ddof = 1``),

        H = d/2 (1 + log 2 pi) + 1/2 log det S,

    exact for Gaussian data up to sampling error, an upper bound on the entropy of any
    distribution with covariance ``S``. ``bias_correction=True`` subtracts the known bias of
    ``log det S`` (``sum_{i=1..d} psi((n-i)/2) + d log(2/(n-1))``), giving an unbiased estimate of
    ``log det Sigma`` for Gaussian samples. Units: nats by default (``base``). 1-D input is one
    variable.

    Args:
        bias_correction: remove the Wishart bias of ``log det S`` (default False).
        base: logarithm base (default e).

    Caveats: needs ``n > d`` and a non-singular covariance; for non-Gaussian data it is the
    maximum-entropy bound, not an estimate. Without correction, ``log det S`` is biased low by
    about ``d (d + 1) / (2 n)``.

    Citation: Cover and Thomas, "Elements of Information Theory" (2006), Thm 8.4.1; Ahmed and
    Gokhale, "Entropy expressions and their estimators for multivariate distributions", IEEE
    Trans. Inf. Theory 35 (1989).
    """

    citation = (
        ("Elements of Information Theory, Theorem 8.4.1", "Cover and Thomas, 2006"),
        (
            "Entropy expressions and their estimators for multivariate distributions",
            "IEEE Trans. Inf. Theory 35 (1989)",
        ),
    )
    capabilities = {"devices": ("cpu", "cuda"), "accumulate": "gram"}

    def __init__(self, bias_correction: bool = False, base: float = math.e) -> None:
        self.bias_correction = check_flag(bias_correction, "bias_correction")
        self._log_base = log_base(base)
        self.base = base
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        no_second_input(y, "gaussian-entropy")
        m = as_matrix(x, "x", min_rows=2, allow_vector=True)
        n, d = m.shape
        if n <= d:
            raise BadInputError(
                f"gaussian-entropy needs more samples than dimensions (n > d); got n={n}, d={d}"
            )
        mean = m.mean(dim=0, keepdim=True)
        if m.device.type == "cpu" and m.dtype == torch.float64 and not m.requires_grad:
            z = torch.sub(m, mean, out=host_empty_like(m))  # huge pages: fewer page faults
        else:
            z = m - mean
        s = pow2_scale(z)  # exact rescaling: 1e200 data does not overflow; d log s^2 added back
        if 2.0**-400 <= s <= 2.0**400:  # the squares are safe: scale the small (d, d) instead
            cov = gram(z, rows=False).div_((n - 1) * s * s)
        else:
            z = z / s
            cov = gram(z, rows=False) / (n - 1)
        sign, logdet = torch.linalg.slogdet(cov)
        if float(sign) <= 0 or not math.isfinite(float(logdet)):
            raise BadInputError(
                "the sample covariance is singular (collinear or constant columns); drop "
                "redundant columns or use knn-entropy"
            )
        logdet_value = float(logdet) + 2.0 * d * math.log(s)
        correction = logdet_bias(n, d) if self.bias_correction else 0.0
        h = 0.5 * d * (1.0 + math.log(2.0 * math.pi)) + 0.5 * (logdet_value - correction)
        if not details:  # the eigenvalues are only reported, never used for the value
            return finish(h / self._log_base, None, False)
        info = {
            "logdet_cov": logdet_value,
            "logdet_correction": correction,
            "covariance_eigenvalues": to_host(torch.linalg.eigvalsh(cov).flip(0)) * (s * s),
            "units": self.units,
        }
        return finish(h / self._log_base, info, details)
