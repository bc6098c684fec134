"""cs-divergence and cs-qmi: Cauchy-Schwarz divergence and quadratic mutual information from
Gaussian kernel (Parzen) density estimates, the Gaussian closed form, and the conditional CS
divergence that the ``cs-ib`` loss uses.

Every kernel sum runs over row blocks, so the memory is O(block x n) while the time stays
O(n m d). Without autograd (the estimators) a sum is first taken in the plain domain, one
in-place buffer per block; when that sum is too close to underflow to be exact to round-off
(:data:`PLAIN_FLOOR`) it is taken again in the log domain (``logsumexp`` of
``-||u||^2 / (2 sigma^2)``), so far-apart samples give a large finite value instead of
``log 0``. With autograd on (the loss) the log domain is used throughout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from xent_core import BadInputError, BadParameterError, validate

from ._common import as_matrix, finish, log_base, unit_name

#: kernel entries per row block (2**22 float64 entries: 32 MiB per block matrix)
BLOCK_ENTRIES = 1 << 22
#: a plain-domain kernel sum of ``count`` entries is used when it is >= PLAIN_FLOOR * count: each
#: entry that underflows errs by less than 2.3e-308, so the relative error stays below 1e-27
PLAIN_FLOOR = 1e-280
#: the median rule looks at this many rows at most (a seeded random subset of them)
MEDIAN_ROWS = 2048
#: conditional-divergence denominators: the plug-in estimator, or the official code's choice
DENOMINATORS = ("squared-sum", "sum-of-squares")


# ----------------------------------------------------------------------------- parameters
def check_sigma(name: str, value: Any) -> float | str:
    """A bandwidth: a finite number > 0 or the string ``'median'``."""
    if isinstance(value, str):
        if value.strip().lower() == "median":
            return "median"
        raise BadParameterError(f"{name} must be a number > 0 or 'median'; got {value!r}")
    return validate.positive(name, value)


def median_bandwidth(z: torch.Tensor) -> float:
    """Median pairwise Euclidean distance of the rows of ``z`` (rows i < j; an even count
    takes the mean of the two middle values, as numpy).

    At most :data:`MEDIAN_ROWS` rows are used (a seeded random subset: the same rows every
    call). A zero median (many tied rows) falls back to the mean distance, and all-equal rows
    to 1 (the divergence is then 0 whatever the bandwidth).
    """
    n = z.shape[0]
    if n < 2:
        raise BadInputError("the 'median' bandwidth needs at least 2 samples; pass sigma=<number>")
    if n > MEDIAN_ROWS:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MEDIAN_ROWS]
        z = z[idx.to(z.device)]
    d = torch.pdist(z.detach().to(torch.float64))
    for value in (float(torch.quantile(d, 0.5)), float(d.mean())):
        if value > 0 and math.isfinite(value):
            return value
    return 1.0


def resolve_sigma(sigma: float | str, *samples: torch.Tensor) -> float:
    """The number behind ``sigma`` (``'median'`` is taken on the pooled ``samples``)."""
    if sigma == "median":
        return median_bandwidth(torch.cat([s.detach() for s in samples], dim=0))
    return float(sigma)


# ----------------------------------------------------------------------------- kernel sums
def _scaled(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Rows divided by ``sigma * sqrt(2)``: then the log-kernel is ``-||a_i - b_j||^2``."""
    return z / (sigma * math.sqrt(2.0))


def neg_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-||a_i - b_j||^2`` (clamped at 0 from above; differentiable)."""
    sq = a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2.0 * (a @ b.T)
    return -sq.clamp_min(0.0)


def row_blocks(a: torch.Tensor, m: int, plain: bool = False) -> list[torch.Tensor]:
    """``a`` split into row blocks of about :data:`BLOCK_ENTRIES` / ``m`` rows (``plain``: 1/16
    of that, 2 MiB blocks that stay in cache through the in-place passes of
    :func:`kernel_blocks`)."""
    entries = BLOCK_ENTRIES // 16 if plain else BLOCK_ENTRIES
    return list(torch.split(a, max(1, entries // max(m, 1))))


def kernel_blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[torch.Tensor]:
    """``exp(-||a_i - b_j||^2)`` in the plain domain for the plain row blocks of ``a``, each
    built in place in one buffer reused by every block (no autograd; use each block before
    asking for the next)."""
    sq_b = b.square().sum(1)[None, :]
    sq_a = a.square().sum(1)[:, None]
    blocks = row_blocks(a, len(b), True)
    buf = a.new_empty((len(blocks[0]) if blocks else 0, b.shape[0]))  # one buffer, reused
    for blk, sq in zip(blocks, row_blocks(sq_a, len(b), True), strict=True):
        k = torch.addmm(sq_b, blk, b.T, alpha=-2.0, out=buf[: len(blk)])
        yield k.add_(sq).clamp_(min=0.0).neg_().exp_()


def _exact(total: torch.Tensor, count: int) -> bool:
    """True when a plain-domain sum of ``count`` kernel entries is far enough above underflow."""
    return bool(total.min() >= PLAIN_FLOOR * count)


def log_kernel_sum(a: torch.Tensor, b: torch.Tensor, plain: bool = False) -> torch.Tensor:
    """``log sum_ij exp(-||a_i - b_j||^2)`` over row blocks of ``a``; ``plain``: first in the
    plain domain (no autograd; a data-dependent branch), kept when exact."""
    if plain:
        total = torch.stack([k.sum() for k in kernel_blocks(a, b)]).sum()
        if _exact(total, a.shape[0] * b.shape[0]):
            return total.log()
    parts = [torch.logsumexp(neg_sq_dist(blk, b).reshape(-1), 0) for blk in row_blocks(a, len(b))]
    return torch.logsumexp(torch.stack(parts), 0)


def log_cs_terms(
    x: torch.Tensor, y: torch.Tensor, sigma: float, plain: bool = False
) -> dict[str, torch.Tensor]:
    """``log`` of the three Parzen integrals ``int p q``, ``int p^2``, ``int q^2`` (up to the
    kernel's normalising constant, which cancels in the divergence); ``plain``: see
    :func:`log_kernel_sum`."""
    a, b = _scaled(x, sigma), _scaled(y, sigma)
    n, m = x.shape[0], y.shape[0]
    return {
        "log_pq": log_kernel_sum(a, b, plain) - math.log(n * m),
        "log_pp": log_kernel_sum(a, a, plain) - 2 * math.log(n),
        "log_qq": log_kernel_sum(b, b, plain) - 2 * math.log(m),
    }


def cs_divergence_tensor(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """``D_CS = -2 log int p q + log int p^2 + log int q^2`` in nats, as a tensor."""
    t = log_cs_terms(x, y, sigma)
    return -2.0 * t["log_pq"] + t["log_pp"] + t["log_qq"]


def _qmi_from(lse_joint: torch.Tensor, row_x: torch.Tensor, row_y: torch.Tensor) -> torch.Tensor:
    """``I_CS`` from ``log sum Kx*Ky`` and the log row sums of ``Kx`` and ``Ky`` (the powers of
    ``N`` cancel: -2 - 4 + 6)."""
    lse_x, lse_y = torch.logsumexp(row_x, 0), torch.logsumexp(row_y, 0)
    cross = torch.logsumexp(row_x + row_y, 0)
    return lse_joint + lse_x + lse_y - 2.0 * cross


def cs_qmi_tensors(
    x: torch.Tensor,
    y: torch.Tensor,
    sigma_x: float,
    sigma_y: float,
    *,
    self_terms: bool = False,
    plain: bool = False,
) -> dict[str, torch.Tensor]:
    """``I_CS(x; y)`` (and ``I_CS(x; x)``, ``I_CS(y; y)`` when ``self_terms``) in nats;
    ``plain``: see :func:`log_kernel_sum`.

    With ``Kx``, ``Ky`` the Gaussian Gram matrices of the paired rows,
    ``I_CS = log[(1/N^2) sum Kx*Ky * (1/N^4) sum Kx sum Ky] - 2 log[(1/N^3) 1^T Kx Ky 1]``.
    """
    a, b = _scaled(x, sigma_x), _scaled(y, sigma_y)
    sums = _plain_qmi_sums(a, b, self_terms) if plain else None
    if sums is None:
        sums = _log_qmi_sums(a, b, self_terms)
    joint, rx, ry = sums["joint"], sums["rows_x"], sums["rows_y"]
    out = {"qmi": _qmi_from(joint, rx, ry)}
    if self_terms:
        out["qmi_xx"] = _qmi_from(sums["joint_x"], rx, rx)
        out["qmi_yy"] = _qmi_from(sums["joint_y"], ry, ry)
    return out


def _log_qmi_sums(a: torch.Tensor, b: torch.Tensor, self_terms: bool) -> dict[str, torch.Tensor]:
    """Log-domain ``log sum Kx*Ky`` (``joint``; ``joint_x``: ``Kx*Kx``, ``joint_y``: ``Ky*Ky``)
    and log row sums ``rows_x``, ``rows_y`` of the scaled rows ``a``, ``b``."""
    joint, jx, jy, rows_x, rows_y = [], [], [], [], []
    for blk_a, blk_b in zip(row_blocks(a, len(a)), row_blocks(b, len(a)), strict=True):
        sx, sy = neg_sq_dist(blk_a, a), neg_sq_dist(blk_b, b)
        joint.append(torch.logsumexp((sx + sy).reshape(-1), 0))
        rows_x.append(torch.logsumexp(sx, 1))
        rows_y.append(torch.logsumexp(sy, 1))
        if self_terms:
            jx.append(torch.logsumexp((2 * sx).reshape(-1), 0))
            jy.append(torch.logsumexp((2 * sy).reshape(-1), 0))
    out = {"joint": torch.logsumexp(torch.stack(joint), 0)}
    out.update(rows_x=torch.cat(rows_x), rows_y=torch.cat(rows_y))
    if self_terms:
        out.update(joint_x=torch.logsumexp(torch.stack(jx), 0))
        out.update(joint_y=torch.logsumexp(torch.stack(jy), 0))
    return out


def _plain_qmi_sums(
    a: torch.Tensor, b: torch.Tensor, self_terms: bool
) -> dict[str, torch.Tensor] | None:
    """The sums of :func:`_log_qmi_sums` taken in the plain domain (then logged), or None when
    one of them is too close to underflow to be exact to round-off."""
    sums: dict[str, list[torch.Tensor]] = {"joint": [], "joint_x": [], "joint_y": []}
    rows_x, rows_y = [], []
    for kx, ky in zip(kernel_blocks(a, a), kernel_blocks(b, b), strict=True):
        rows_x.append(kx.sum(1))
        rows_y.append(ky.sum(1))
        kx, ky = kx.view(-1), ky.view(-1)
        sums["joint"].append(torch.dot(kx, ky))
        if self_terms:
            sums["joint_x"].append(torch.dot(kx, kx))
            sums["joint_y"].append(torch.dot(ky, ky))
    n = a.shape[0]
    out = {k: torch.stack(v).sum() for k, v in sums.items() if v}
    out.update(rows_x=torch.cat(rows_x), rows_y=torch.cat(rows_y))
    counts = {"rows_x": n, "rows_y": n}
    if not all(_exact(v, counts.get(k, n * n)) for k, v in out.items()):
        return None
    return {k: v.log() for k, v in out.items()}


def normalized_qmi(t: dict[str, torch.Tensor]) -> torch.Tensor:
    """``I(x; y) / sqrt(I(x; x) I(y; y))``, 0 where a variable is constant (0/0)."""
    den = (t["qmi_xx"].clamp_min(0) * t["qmi_yy"].clamp_min(0)).sqrt()
    ok = den > 0
    return torch.where(
        ok, t["qmi"] / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den)
    )


def conditional_cs_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    y_hat: torch.Tensor,
    sigma: float,
    sigma_y: float | None = None,
    denominator: str = "squared-sum",
) -> torch.Tensor:
    """Conditional CS divergence ``D_CS(p(y|x) || q(y_hat|x))`` for paired rows, in nats.

    ``D = -2 log int int p(y|x) q(y|x) dx dy + log int int p(y|x)^2 + log int int q(y|x)^2``.
    With ``K`` the Gram matrix of ``x`` and ``L1``, ``L2``, ``L21`` those of ``y``, ``y_hat`` and
    the cross pairs ``(y_hat_j, y_i)``:

        D = log sum_j (sum_i K_ji L1_ji)/d_j + log sum_j (sum_i K_ji L2_ji)/d_j
            - 2 log sum_j (sum_i K_ji L21_ji)/d_j,

    with ``d_j = (sum_i K_ji)^2`` (``'squared-sum'``: each integral is the sample mean of
    ``p(x, y) / p(x)^2`` with KDEs plugged in). ``'sum-of-squares'`` (the official code,
    ``loss_cs.py``) uses ``d_j = sum_i K_ji^2``, a KDE of ``p(x)`` alone: it estimates the
    ``p(x)``-weighted divergence ``-2 log E_x int p q dy + log E_x int p^2 dy + log E_x int q^2 dy``.
    Full n x n matrices (it is a training loss: autograd keeps them anyway).
    """
    sy = sigma if sigma_y is None else sigma_y
    k = neg_sq_dist(_scaled(x, sigma), _scaled(x, sigma))
    u, v = _scaled(y, sy), _scaled(y_hat, sy)
    den = 2.0 * torch.logsumexp(k, 1) if denominator == "squared-sum" else torch.logsumexp(2 * k, 1)

    def term(lg: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(torch.logsumexp(k + lg, 1) - den, 0)

    return term(neg_sq_dist(u, u)) + term(neg_sq_dist(v, v)) - 2.0 * term(neg_sq_dist(v, u))


# ----------------------------------------------------------------------------- closed form
def cs_divergence_gaussian(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """Closed-form ``D_CS(N(m1, S1) || N(m2, S2))`` in nats (float64 numpy).

    ``int N(u; m1, S1) N(u; m2, S2) du = N(m1; m2, S1 + S2)``, so
    ``D_CS = -2 log N(m1; m2, S1+S2) + log N(0; 0, 2 S1) + log N(0; 0, 2 S2)``. The Parzen
    estimator with bandwidth ``sigma`` converges to this with ``S_k + (sigma^2 / 2) I``.
    """
    m1, m2 = np.atleast_1d(np.asarray(mean1, float)), np.atleast_1d(np.asarray(mean2, float))
    s1 = np.atleast_2d(np.asarray(cov1, float))
    s2 = np.atleast_2d(np.asarray(cov2, float))
    if not (m1.shape == m2.shape and s1.shape == s2.shape == (m1.size, m1.size)):
        raise BadInputError("means must be (d,) and covariances (d, d) with the same d")

    def log_normal_at(diff: np.ndarray, cov: np.ndarray) -> float:
        sign, logdet = np.linalg.slogdet(cov)
        if sign <= 0:
            raise BadInputError("covariances must be positive definite")
        quad = float(diff @ np.linalg.solve(cov, diff))
        return -0.5 * (diff.size * math.log(2 * math.pi) + logdet + quad)

    zero = np.zeros_like(m1)
    return (
        -2.0 * log_normal_at(m1 - m2, s1 + s2)
        + log_normal_at(zero, 2 * s1)
        + log_normal_at(zero, 2 * s2)
    )


# ----------------------------------------------------------------------------- estimators
class CSDivergence:
    """cs-divergence: Cauchy-Schwarz divergence between two samples, from Gaussian KDEs.

        D_CS(p || q) = -log[(int p q)^2 / (int p^2 int q^2)]
                     = -2 log int p q + log int p^2 + log int q^2 >= 0 (symmetric),

    estimated with ``kappa(u) = exp(-||u||^2 / (2 sigma^2))``: ``int p q ~ mean_ij kappa(x_i - y_j)``
    (likewise ``int p^2``, ``int q^2`` over all pairs, diagonal included; the normalising
    constants cancel). This is exactly ``D_CS`` between the two Gaussian-mixture KDEs of
    bandwidth ``sigma / sqrt(2)``; for Gaussian data it converges to the closed form
    (``cs_divergence_gaussian``) with each covariance plus ``sigma^2 / 2``. The bandwidth
    dominates the value: compare values at one ``sigma``.

    Call ``est(x, y)`` with ``x`` (n,) or (n, d) and ``y`` (m,) or (m, d). ``details``: ``sigma``
    (the number used) and the log integrals ``log_pq``, ``log_pp``, ``log_qq``.
    Cost: O((n + m)^2 d) time; memory O(block x (n + m)): kernel sums run over row blocks of
    2^22 entries (plain domain, log domain near underflow), on the inputs' device in float64.

    Args:
        sigma: kernel bandwidth, a number > 0 or 'median' (median pairwise distance of the pooled sample).
        base: logarithm base of the result (default e: nats; the official code uses 2).

    Citation: Yu, Yu, Lokse, Jenssen, Principe, "Cauchy-Schwarz Divergence Information Bottleneck
    for Regression" (arXiv:2404.17951).
    """

    citation = (
        ("Cauchy-Schwarz Divergence Information Bottleneck for Regression", "arXiv:2404.17951"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(self, sigma: float | str = 1.0, base: float | str = math.e) -> None:
        self.sigma = check_sigma("sigma", sigma)
        self._log_base = log_base(base)
        self.units = unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("cs-divergence needs two samples: est(x, y)")
        a = as_matrix(x, "x", min_rows=1, allow_vector=True)
        b = as_matrix(y, "y", min_rows=1, allow_vector=True).to(a.device)
        if a.shape[1] != b.shape[1]:
            raise BadInputError(
                f"x and y must have the same number of features; got {a.shape[1]} and {b.shape[1]}"
            )
        sigma = resolve_sigma(self.sigma, a, b)
        with torch.no_grad():
            t = log_cs_terms(a, b, sigma, plain=True)
        logs = {k: float(v) for k, v in t.items()}
        value = (-2.0 * logs["log_pq"] + logs["log_pp"] + logs["log_qq"]) / self._log_base
        return finish(value, {"sigma": sigma, **logs, "units": self.units}, details)

    def tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The divergence as a differentiable tensor (nats; for losses; no input checks)."""
        return cs_divergence_tensor(x, y, resolve_sigma(self.sigma, x, y))

    def conditional(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        y_hat: torch.Tensor,
        denominator: str = "squared-sum",
    ) -> torch.Tensor:
        """Conditional ``D_CS(p(y|x) || q(y_hat|x))`` as a differentiable tensor (nats; for
        losses; no input checks). ``'median'`` is taken on ``x`` and on ``y`` with ``y_hat``."""
        sx = resolve_sigma(self.sigma, x)
        return conditional_cs_divergence(
            x,
            y,
            y_hat,
            sx,
            resolve_sigma(self.sigma, y, y_hat),
            validate.choice("denominator", denominator, DENOMINATORS),
        )


class CSQuadraticMI:
    """cs-qmi: Cauchy-Schwarz quadratic mutual information of paired samples (Gaussian KDE).

    ``I_CS(x; y) = D_CS(p(x, y) || p(x) p(y))`` with product Gaussian kernels. With ``Kx``, ``Ky``
    the (N, N) Gram matrices ``exp(-||x_i - x_j||^2 / (2 sigma_x^2))``:

        I_CS = log[(1/N^2) sum_ij Kx_ij Ky_ij * (1/N^4) sum Kx sum Ky] - 2 log[(1/N^3) 1^T Kx Ky 1]

    (>= 0; 0 when x or y is constant). ``normalized=True`` returns
    ``I(x; y) / sqrt(I(x; x) I(y; y))`` (0 when a variable is constant). For jointly Gaussian
    data it converges to ``D_CS`` between the joint Gaussian and the product of its marginals,
    each covariance plus ``diag(sigma_x^2, sigma_y^2) / 2``.

    Call ``est(x, y)`` with paired ``x`` (N,) or (N, dx) and ``y`` (N,) or (N, dy). ``details``:
    ``sigma_x``, ``sigma_y``, ``qmi`` (nats) and, when normalised, ``qmi_xx``, ``qmi_yy``.
    Cost: O(N^2 (dx + dy)) time; memory O(block x N) (row blocks, plain or log domain, float64, on the
    inputs' device).

    Args:
        sigma: bandwidth of x (and of y unless sigma_y is given): a number > 0 or 'median'.
        sigma_y: bandwidth of y (None: the same rule as sigma; 'median' is per variable).
        normalized: divide by sqrt(I(x; x) I(y; y)), as in CS-IB's compression term.
        base: logarithm base (default e: nats; the official code reports bits).

    The official code's median rule is 10 x the median *squared* distance; pass a number to
    reproduce it. Citation: Yu, Yu, Lokse, Jenssen, Principe, "Cauchy-Schwarz Divergence
    Information Bottleneck for Regression" (arXiv:2404.17951).
    """

    citation = (
        ("Cauchy-Schwarz Divergence Information Bottleneck for Regression", "arXiv:2404.17951"),
    )
    capabilities = {"devices": ("cpu", "cuda")}

    def __init__(
        self,
        sigma: float | str = 1.0,
        sigma_y: float | str | None = None,
        normalized: bool = False,
        base: float | str = math.e,
    ) -> None:
        self.sigma = check_sigma("sigma", sigma)
        self.sigma_y = self.sigma if sigma_y is None else check_sigma("sigma_y", sigma_y)
        self.normalized = validate.flag("normalized", normalized)
        self._log_base = log_base(base)
        self.units = "dimensionless" if self.normalized else unit_name(base)

    def __call__(self, x: Any, y: Any = None, *, details: bool = False) -> Any:
        if y is None:
            raise BadInputError("cs-qmi needs two paired inputs: est(x, y)")
        a = as_matrix(x, "x", min_rows=1, allow_vector=True)
        b = as_matrix(y, "y", min_rows=1, allow_vector=True).to(a.device)
        if a.shape[0] != b.shape[0]:
            raise BadInputError(
                f"x has {a.shape[0]} rows and y has {b.shape[0]}: samples must be paired"
            )
        sx, sy = resolve_sigma(self.sigma, a), resolve_sigma(self.sigma_y, b)
        with torch.no_grad():
            t = cs_qmi_tensors(a, b, sx, sy, self_terms=self.normalized, plain=True)
        info: dict[str, Any] = {"sigma_x": sx, "sigma_y": sy, **{k: float(v) for k, v in t.items()}}
        if self.normalized:
            value = float(normalized_qmi(t))
        else:
            value = info["qmi"] / self._log_base
        return finish(value, {**info, "units": self.units}, details)

    def tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (normalised) QMI as a differentiable tensor (nats; for losses; no input checks)."""
        sx, sy = resolve_sigma(self.sigma, x), resolve_sigma(self.sigma_y, y)
        t = cs_qmi_tensors(x, y, sx, sy, self_terms=self.normalized)
        return normalized_qmi(t) if self.normalized else t["qmi"]
